import { readFileSync } from 'node:fs';

/**
 * Settings come from, in order of precedence: command-line flags, CALLSCOPE_* environment
 * variables, a JSON config file (--config or CALLSCOPE_CONFIG), defaults.
 */
export class Settings {
  private readonly file: Record<string, unknown>;

  constructor(
    private readonly flags: Record<string, string | boolean | undefined>,
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {
    const path = (flags.config as string | undefined) ?? env.CALLSCOPE_CONFIG;
    this.file = {};
    if (path) {
      let text: string;
      try {
        text = readFileSync(path, 'utf8');
      } catch (e) {
        throw new UsageError(`cannot read config file ${path}: ${(e as Error).message}`);
      }
      try {
        const parsed: unknown = JSON.parse(text);
        if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed))
          throw new Error('not an object');
        this.file = parsed as Record<string, unknown>;
      } catch (e) {
        throw new UsageError(`config file ${path} is not a JSON object: ${(e as Error).message}`);
      }
    }
  }

  /** `name` is the flag name (kebab-case); env is CALLSCOPE_NAME, the file key is camelCase. */
  string(name: string, fallback: string): string;
  string(name: string, fallback?: string): string | undefined;
  string(name: string, fallback?: string): string | undefined {
    const flag = this.flags[name];
    if (typeof flag === 'string') return flag;
    const env = this.env[`CALLSCOPE_${name.toUpperCase().replaceAll('-', '_')}`];
    if (env !== undefined && env !== '') return env;
    const key = name.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
    const value = this.file[key];
    if (typeof value === 'string' || typeof value === 'number') return String(value);
    return fallback;
  }

  number(name: string, fallback: number): number {
    const text = this.string(name);
    if (text === undefined) return fallback;
    const n = Number(text);
    if (!Number.isFinite(n)) throw new UsageError(`--${name} expects a number, got "${text}"`);
    return n;
  }
}

export class UsageError extends Error {
  override name = 'UsageError';
}
