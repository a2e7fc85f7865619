/** What every callscope command is: a name, a one-line summary, its own help, and how it runs. */
export interface Command {
  name: string;
  /** One line for `callscope --help`. */
  summary: string;
  /** `callscope NAME --help`: usage, the options this command takes, the exit codes. */
  help: string;
  /** Runs with the arguments after the command name; resolves with the exit code. */
  run(argv: string[]): Promise<number>;
}
