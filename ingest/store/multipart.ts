/**
 * The multipart/form-data bodies @clickhouse/client sends when query parameters are too long for a
 * URL (`use_multipart_params`, or automatically past 4 KiB): one field `query` and one field per
 * `param_NAME`. A ClickHouse server reads such fields like URL parameters; file parts would be
 * external tables, which this store does not support.
 */
import { ClickHouseException } from './errors.js';

/** The boundary of a multipart/form-data Content-Type, or undefined for any other type. */
export function multipartBoundary(contentType: string | undefined): string | undefined {
  if (!contentType || !/^multipart\/form-data\s*;/i.test(contentType)) return undefined;
  const m = /;\s*boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType);
  return m?.[1] ?? m?.[2];
}

function malformed(detail: string): ClickHouseException {
  return new ClickHouseException('BAD_ARGUMENTS', `Malformed multipart/form-data body: ${detail}`, 400);
}

const CRLF = Buffer.from('\r\n');
const HEADER_END = Buffer.from('\r\n\r\n');

/** The form fields of a multipart body, by name, as raw bytes (later fields of a name win). */
export function parseMultipartFields(body: Buffer, boundary: string): Map<string, Buffer> {
  const delimiter = Buffer.from(`--${boundary}`);
  const fields = new Map<string, Buffer>();
  let pos = body.indexOf(delimiter);
  if (pos < 0) throw malformed('no opening boundary');
  for (;;) {
    pos += delimiter.length;
    if (body[pos] === 0x2d && body[pos + 1] === 0x2d) return fields; // closing `--boundary--`
    if (!body.subarray(pos, pos + 2).equals(CRLF)) throw malformed('boundary not followed by CRLF');
    pos += 2;
    const headerEnd = body.indexOf(HEADER_END, pos);
    if (headerEnd < 0) throw malformed('part headers never end');
    const headers = body.subarray(pos, headerEnd).toString('latin1');
    const contentStart = headerEnd + HEADER_END.length;
    const next = body.indexOf(Buffer.concat([CRLF, delimiter]), contentStart);
    if (next < 0) throw malformed('part never closed');
    const disposition = /^content-disposition:\s*form-data(.*)$/im.exec(headers)?.[1] ?? '';
    const name = /;\s*name="([^"]*)"/i.exec(disposition)?.[1];
    if (name === undefined) throw malformed('a part without a name');
    if (/;\s*filename=/i.test(disposition)) {
      throw new ClickHouseException(
        'NOT_IMPLEMENTED',
        `External data (file part '${name}') is not supported by the embedded store`,
        400,
      );
    }
    fields.set(name, body.subarray(contentStart, next));
    pos = next + CRLF.length;
  }
}
