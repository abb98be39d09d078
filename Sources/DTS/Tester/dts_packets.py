#!/usr/bin/python3
# dts packet helper, installed on the DUT by dts (Sources/DTS/Tester/PacketHelper.swift): send frames from a
# JSON spec, capture or read a pcap as JSON. Every value arrives as argv or JSON; nothing is interpolated here.
import json, sys, time, os, argparse
import logging
logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
from scapy.all import Ether, IP, UDP, TCP, ICMP, ARP, Raw, sendp, sniff, rdpcap, conf
from scapy.layers.vxlan import VXLAN
from scapy.packet import bind_layers

def headers(spec, inner):
    eth = spec.get("ether") or {}
    pkt = Ether(**{k: v for k, v in eth.items() if v is not None})
    ip = spec.get("ip")
    if ip is not None:
        fields = {"src": ip["src"], "dst": ip["dst"]}
        if ip.get("ttl") is not None: fields["ttl"] = ip["ttl"]
        if ip.get("checksum") is not None: fields["chksum"] = ip["checksum"]
        if ip.get("flags") is not None: fields["flags"] = ip["flags"]
        pkt = pkt / IP(**fields)
    l4 = spec.get("l4")
    if l4 is not None:
        fields = {"sport": l4["sport"], "dport": l4["dport"]}
        if l4.get("checksum") is not None: fields["chksum"] = l4["checksum"]
        pkt = pkt / (UDP(**fields) if l4["proto"] == "udp" else TCP(**fields))
    payload = bytes.fromhex(spec.get("payload_hex") or "")
    if payload: pkt = pkt / Raw(load=payload)
    return pkt

def build(spec):
    inner = headers(spec, True)
    vx = spec.get("vxlan")
    if vx is None: return inner
    outer = vx["outer"]
    pkt = Ether(**{k: v for k, v in (outer.get("ether") or {}).items() if v is not None})
    pkt = pkt / IP(src=outer["ip"]["src"], dst=outer["ip"]["dst"])
    pkt = pkt / UDP(sport=vx.get("sport", 4790), dport=vx.get("dport", 4789))
    return pkt / VXLAN(vni=vx["vni"], flags=0x08) / inner

def checksum_ok(layer):
    try:
        original = layer.chksum
        copy = layer.__class__(bytes(layer))
        copy.chksum = None
        if isinstance(layer, IP):
            return original == IP(bytes(copy)).chksum
        underlay = layer.underlayer
        if underlay is None or not isinstance(underlay, IP): return None
        rebuilt = IP(bytes(underlay))
        rebuilt[layer.__class__].chksum = None
        return original == IP(bytes(rebuilt))[layer.__class__].chksum
    except Exception:
        return None

def decode(pkt):
    out = {"length": len(pkt), "layers": []}
    layer = pkt
    while layer is not None and layer.__class__.__name__ not in ("NoPayload",):
        out["layers"].append(layer.__class__.__name__)
        layer = layer.payload if layer.payload else None
    if Ether in pkt:
        out["ether"] = {"src": pkt[Ether].src, "dst": pkt[Ether].dst, "type": pkt[Ether].type}
    if IP in pkt:
        ip = pkt[IP]
        out["ip"] = {"src": ip.src, "dst": ip.dst, "proto": ip.proto, "ttl": ip.ttl,
                     "checksum": ip.chksum, "checksum_ok": checksum_ok(ip)}
    if UDP in pkt:
        u = pkt[UDP]
        out["udp"] = {"sport": u.sport, "dport": u.dport, "checksum": u.chksum,
                      "checksum_ok": True if u.chksum == 0 else checksum_ok(u)}
    elif TCP in pkt:
        t = pkt[TCP]
        out["tcp"] = {"sport": t.sport, "dport": t.dport, "checksum": t.chksum, "checksum_ok": checksum_ok(t)}
    if VXLAN in pkt:
        out["vxlan"] = {"vni": pkt[VXLAN].vni}
        inner = pkt[VXLAN].payload
        out["inner"] = decode(inner) if inner else None
        return out
    if Raw in pkt:
        out["payload_hex"] = bytes(pkt[Raw].load).hex()
    return out

def cmd_send(args):
    spec = json.loads(args.spec)
    frame = build(spec)
    sendp(frame, iface=args.iface, count=args.count, inter=args.interval, verbose=False)
    print(json.dumps({"sent": args.count, "length": len(frame)}))

def cmd_capture(args):
    def started():
        if args.ready:
            with open(args.ready, "w") as f: f.write("ready\n")
    kwargs = {"iface": args.iface, "timeout": args.duration, "store": True, "started_callback": started}
    if args.filter:
        # sniff() silently ignores a filter that does not compile: check it first.
        from scapy.arch.common import compile_filter
        compile_filter(args.filter, args.iface)
        kwargs["filter"] = args.filter
    if args.count: kwargs["count"] = args.count
    packets = sniff(**kwargs)
    print(json.dumps([decode(p) for p in packets]))

def cmd_pcap(args):
    # A pcap for the DPDK generator: the frame padded (or refused) to --size bytes on the wire, CRC
    # included as DTS counts frame sizes, repeated --count times.
    from scapy.utils import wrpcap
    frame = build(json.loads(args.spec))
    want = args.size - 4
    if len(frame) > want:
        sys.exit("frame of %d bytes (without CRC) does not fit --size %d" % (len(frame), args.size))
    frame = frame / Raw(load=bytes(want - len(frame)))
    wrpcap(args.out, [frame] * args.count)
    print(json.dumps({"written": args.count, "length": len(frame)}))

def cmd_read(args):
    print(json.dumps([decode(p) for p in rdpcap(args.pcap)]))

def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("send")
    s.add_argument("--iface", required=True)
    s.add_argument("--spec", required=True)
    s.add_argument("--count", type=int, default=1)
    s.add_argument("--interval", type=float, default=0.0)
    c = sub.add_parser("capture")
    c.add_argument("--iface", required=True)
    c.add_argument("--filter", default="")
    c.add_argument("--duration", type=float, required=True)
    c.add_argument("--count", type=int, default=0)
    c.add_argument("--ready", default="")
    p = sub.add_parser("pcap")
    p.add_argument("--spec", required=True)
    p.add_argument("--size", type=int, required=True)
    p.add_argument("--count", type=int, default=64)
    p.add_argument("--out", required=True)
    r = sub.add_parser("read")
    r.add_argument("pcap")
    args = parser.parse_args()
    {"send": cmd_send, "capture": cmd_capture, "pcap": cmd_pcap, "read": cmd_read}[args.command](args)

if __name__ == "__main__":
    main()
