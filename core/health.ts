/** Capture health: what a live capture reports about itself, every N seconds and at stop. */

/** One capture-health record (every N seconds, and one at stop with `final`). */
export interface CaptureHealth {
  /** Wall-clock time of the sample, ns since the Unix epoch. */
  timeNs: bigint;
  interface: string;
  /** Packets the kernel handed to the capture socket (passed the filter), dropped ones included. */
  received: number;
  /** Packets the kernel dropped: no room in the capture buffer (we read too slowly). */
  droppedKernel: number;
  /** Packets the interface or its driver dropped (rx_dropped since the capture opened; may stay 0). */
  droppedInterface: number;
  receivedDelta: number;
  droppedKernelDelta: number;
  droppedInterfaceDelta: number;
  /** Packets and bytes (captured length) delivered to the pipeline. */
  packets: number;
  bytes: number;
  packetsDelta: number;
  bytesDelta: number;
  /**
   * Packets read but not decoded because one read had run past its time budget (the event loop must
   * keep turning: signals, health, the store): an overload, counted like a drop.
   */
  droppedOverload: number;
  droppedOverloadDelta: number;
  /** Times the capture was reopened after an error (interface deleted and recreated, read errors). */
  reopenings: number;
  /** Times the interface was seen going down. */
  linkDowns: number;
  /** Packets whose onPacket callback threw (logged, then the capture went on). */
  callbackErrors: number;
  /** The interface is up and a capture handle is open. */
  capturing: boolean;
  /** The record written at stop. */
  final: boolean;
}

/** One health record as stored: the capture's record plus what the ingest side adds. */
export interface HealthRecord extends CaptureHealth {
  /** Events dropped so far because the sink could not keep up (cumulative). */
  droppedEvents: number;
  captureId: number;
  nodeName: string;
}
