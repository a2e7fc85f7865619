/*
 * A Kafka-protocol broker for tests: librdkafka's built-in mock cluster behind a tiny line protocol.
 *
 *   gcc -O2 -o mock-cluster mock-cluster.c -lrdkafka
 *   mock-cluster BROKERS [topic:partitions ...]
 *
 * Prints the bootstrap servers (one line) once the topics exist, then reads commands on stdin, one
 * per line, and answers each with "ok" (or "error <reason>"):
 *   down <brokerId>             disconnect a broker and refuse connections (-1: all brokers)
 *   up <brokerId>               accept connections again (-1: all brokers)
 *   topic <name> <partitions>   create a topic (the mock does not implement CreateTopics)
 *   quit                        destroy the cluster and exit
 * End of stdin is treated as quit, so the cluster never outlives the test process that started it.
 */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static rd_kafka_mock_cluster_t *mcluster;

static int create_topic(const char *name, int partitions, char *why, size_t why_len) {
  if (partitions < 1) {
    snprintf(why, why_len, "bad partition count for %s", name);
    return -1;
  }
  rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(mcluster, name, partitions, 1);
  if (err) {
    snprintf(why, why_len, "topic %s: %s", name, rd_kafka_err2str(err));
    return -1;
  }
  return 0;
}

/* "name:partitions" from the command line; the last colon separates, topic names have none. */
static int create_topic_arg(const char *arg) {
  char why[512];
  const char *colon = strrchr(arg, ':');
  if (!colon || colon == arg) {
    fprintf(stderr, "mock-cluster: topic argument %s is not name:partitions\n", arg);
    return -1;
  }
  char name[256];
  size_t len = (size_t)(colon - arg);
  if (len >= sizeof name) {
    fprintf(stderr, "mock-cluster: topic name too long in %s\n", arg);
    return -1;
  }
  memcpy(name, arg, len);
  name[len] = '\0';
  if (create_topic(name, atoi(colon + 1), why, sizeof why)) {
    fprintf(stderr, "mock-cluster: %s\n", why);
    return -1;
  }
  return 0;
}

int main(int argc, char **argv) {
  char errstr[512];
  int brokers = argc > 1 ? atoi(argv[1]) : 1;
  if (brokers < 1) {
    fprintf(stderr, "usage: mock-cluster BROKERS [topic:partitions ...]\n");
    return 64;
  }

  /* The mock cluster needs a client instance for its bookkeeping; it is otherwise unused. */
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof errstr);
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
  if (!rk) {
    fprintf(stderr, "mock-cluster: rd_kafka_new: %s\n", errstr);
    return 1;
  }
  mcluster = rd_kafka_mock_cluster_new(rk, brokers);
  if (!mcluster) {
    fprintf(stderr, "mock-cluster: rd_kafka_mock_cluster_new failed\n");
    return 1;
  }
  for (int i = 2; i < argc; i++) {
    if (create_topic_arg(argv[i])) return 1;
  }

  /* Line-buffered so the parent sees each answer as soon as it is written. */
  setvbuf(stdout, NULL, _IOLBF, 0);
  printf("%s\n", rd_kafka_mock_cluster_bootstraps(mcluster));

  char line[1024];
  while (fgets(line, sizeof line, stdin)) {
    char cmd[32], name[256];
    int a = 0;
    char why[512];
    rd_kafka_resp_err_t err;
    if (sscanf(line, "%31s", cmd) != 1) continue;
    if (!strcmp(cmd, "quit")) break;
    if (!strcmp(cmd, "down") && sscanf(line, "%*s %d", &a) == 1) {
      err = rd_kafka_mock_broker_set_down(mcluster, a);
      if (err) printf("error down %d: %s\n", a, rd_kafka_err2str(err));
      else printf("ok\n");
    } else if (!strcmp(cmd, "up") && sscanf(line, "%*s %d", &a) == 1) {
      err = rd_kafka_mock_broker_set_up(mcluster, a);
      if (err) printf("error up %d: %s\n", a, rd_kafka_err2str(err));
      else printf("ok\n");
    } else if (!strcmp(cmd, "topic") && sscanf(line, "%*s %255s %d", name, &a) == 2) {
      if (create_topic(name, a, why, sizeof why)) printf("error %s\n", why);
      else printf("ok\n");
    } else {
      line[strcspn(line, "\r\n")] = '\0';
      printf("error unknown command: %s\n", line);
    }
  }

  rd_kafka_mock_cluster_destroy(mcluster);
  rd_kafka_destroy(rk);
  return 0;
}
