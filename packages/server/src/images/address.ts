// Which IP addresses an input_image URL may reach. Private, loopback, link-local (which holds
// the cloud metadata service), and other non-public ranges are refused unless allow-listed.
import { BlockList, isIP } from "node:net";

const REFUSED: Array<[string, number, "ipv4" | "ipv6", string]> = [
  ["0.0.0.0", 8, "ipv4", "unspecified"],
  ["10.0.0.0", 8, "ipv4", "private"],
  ["100.64.0.0", 10, "ipv4", "shared (carrier-grade NAT)"],
  ["127.0.0.0", 8, "ipv4", "loopback"],
  ["169.254.0.0", 16, "ipv4", "link-local (cloud metadata)"],
  ["172.16.0.0", 12, "ipv4", "private"],
  ["192.0.0.0", 24, "ipv4", "IETF protocol"],
  ["192.168.0.0", 16, "ipv4", "private"],
  ["198.18.0.0", 15, "ipv4", "benchmarking"],
  ["224.0.0.0", 4, "ipv4", "multicast"],
  ["240.0.0.0", 4, "ipv4", "reserved"],
  ["::", 128, "ipv6", "unspecified"],
  ["::1", 128, "ipv6", "loopback"],
  ["::", 96, "ipv6", "IPv4-compatible (deprecated)"],
  ["::ffff:0:0", 96, "ipv6", "IPv4-mapped"], // any form not unpacked above
  ["fc00::", 7, "ipv6", "private (unique local)"],
  ["fe80::", 10, "ipv6", "link-local"],
  ["ff00::", 8, "ipv6", "multicast"],
  ["64:ff9b::", 96, "ipv6", "NAT64"],
];

export class AddressPolicy {
  private readonly allow = new BlockList();
  constructor(allowList: readonly string[]) {
    for (const entry of allowList) {
      const [addr, bits] = entry.split("/");
      const family = isIP(addr ?? "");
      if (!addr || family === 0) throw new Error(`KONTEXT_FETCH_ALLOW: not an IP or CIDR: ${entry}`);
      const type = family === 4 ? "ipv4" : "ipv6";
      if (bits === undefined) this.allow.addAddress(addr, type);
      else this.allow.addSubnet(addr, Number(bits), type);
    }
  }

  /** null when the address may be reached, else the name of the refused range. */
  refusedRange(address: string): string | null {
    let addr = address;
    let family = isIP(addr);
    if (family === 0) return "unparseable";
    // An IPv4-mapped IPv6 address (::ffff:10.0.0.1, or ::ffff:a00:1 as URL parsing writes it)
    // is judged as the IPv4 address it carries.
    const dotted = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(addr);
    const hex = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/i.exec(addr);
    if (dotted?.[1]) {
      addr = dotted[1];
      family = 4;
    } else if (hex?.[1] && hex[2]) {
      const hi = Number.parseInt(hex[1], 16);
      const lo = Number.parseInt(hex[2], 16);
      addr = [hi >> 8, hi & 255, lo >> 8, lo & 255].join(".");
      family = 4;
    }
    const type = family === 4 ? "ipv4" : "ipv6";
    if (this.allow.check(addr, type)) return null;
    for (const [net, bits, t, name] of REFUSED) {
      if (t !== type) continue;
      const one = new BlockList();
      one.addSubnet(net, bits, t);
      if (one.check(addr, type)) return name;
    }
    return null;
  }
}
