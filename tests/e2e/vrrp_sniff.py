"""Read VRRP advertisements off the wire on this host (stdlib only, run as
root inside a lab container): prints one JSON line with what the first few
carried. Usage: vrrp_sniff.py COUNT TIMEOUT_SECONDS"""

import json
import socket
import sys

count, timeout = int(sys.argv[1]), float(sys.argv[2])
sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, 112)  # IP protocol 112: VRRP
sock.settimeout(timeout)
adverts = []
try:
    while len(adverts) < count:
        packet, _ = sock.recvfrom(2048)
        ihl = (packet[0] & 0x0F) * 4
        vrrp = packet[ihl:]
        adverts.append({
            "source": socket.inet_ntoa(packet[12:16]),
            "destination": socket.inet_ntoa(packet[16:20]),
            "ttl": packet[8],
            "version": vrrp[0] >> 4,
            "router_id": vrrp[1],
            "priority": vrrp[2],
            "addresses": vrrp[3],
            # VRRPv3 is 8 bytes plus the addresses; v2 adds 8 bytes of authentication data.
            "length": len(vrrp),
            "payload": vrrp.hex(),
        })
except socket.timeout:
    pass
print(json.dumps(adverts))
