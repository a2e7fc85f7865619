/**
 * One packet as a capture file (or a live source) hands it to the decoder.
 * Readers reuse a single PacketRecord and overwrite it for every packet: consumers must copy
 * whatever they keep beyond the callback (the bytes live in the reader's chunk buffer).
 */
export interface PacketRecord {
  /** Buffer holding the packet bytes; usually the reader's shared chunk buffer. */
  data: Buffer;
  /** Offset of the first packet byte in `data`. */
  offset: number;
  /** Captured length (bytes present in `data` from `offset`). */
  caplen: number;
  /** Original length on the wire (may exceed caplen when truncated by snaplen). */
  origLen: number;
  /** Capture time: whole seconds since the Unix epoch. */
  tsSec: number;
  /** Capture time: nanoseconds within the second (0..999_999_999). */
  tsNsec: number;
  /** LINKTYPE_* value of the interface this packet came from. */
  linkType: number;
  /** pcapng interface id (0 for classic pcap). */
  interfaceId: number;
  /** 1-based packet number in the file, as tshark numbers frames. */
  number: number;
  /** Byte offset in the file of this packet's record (for error messages). */
  fileOffset: number;
}

/** LINKTYPE_* values (https://www.tcpdump.org/linktypes.html) we decode. */
export const LINKTYPE_NULL = 0;
export const LINKTYPE_ETHERNET = 1;
export const LINKTYPE_RAW = 101;
export const LINKTYPE_LOOP = 108;
export const LINKTYPE_LINUX_SLL = 113;
export const LINKTYPE_IPV4 = 228;
export const LINKTYPE_IPV6 = 229;
export const LINKTYPE_LINUX_SLL2 = 276;

/** A zeroed record over `data`, for a reader (file or live) to reuse for every packet. */
export function emptyPacketRecord(data: Buffer = Buffer.alloc(0)): PacketRecord {
  return {
    data,
    offset: 0,
    caplen: 0,
    origLen: 0,
    tsSec: 0,
    tsNsec: 0,
    linkType: 0,
    interfaceId: 0,
    number: 0,
    fileOffset: 0,
  };
}

/** A capture file that cannot be read at all (wrong magic, unreadable header). */
export class CaptureFormatError extends Error {
  constructor(
    readonly file: string,
    readonly byteOffset: number,
    reason: string,
  ) {
    super(`${file}: ${reason} at byte offset ${byteOffset}`);
    this.name = 'CaptureFormatError';
  }
}
