"""VIP takeover: a probe on the client opens a new HTTPS connection to the
VIP every 20 ms while the active balancer is stopped (docker stop: keepalived
says goodbye) or killed (docker kill: it vanishes); the takeover time is from
the fault to the first answer from the other balancer. Median of several."""

import json
import statistics
import subprocess
import time

from harness.lab import DOCKER, docker

PROBE = r'''
import http.client, json, ssl, sys, time
host, vip, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
out, end = [], time.time() + seconds
while time.time() < end:
    t = time.time()
    try:
        c = http.client.HTTPSConnection(vip, 443, timeout=0.25, context=ctx)
        c.request("GET", "/", headers={"Host": host})
        r = c.getresponse()
        r.read()
        out.append([round(t, 3), r.status, r.getheader("X-Served-By", "")])
        c.close()
    except Exception as exc:
        out.append([round(t, 3), 0, type(exc).__name__])
    time.sleep(max(0.0, 0.02 - (time.time() - t)))
print(json.dumps(out))
'''

FAULTS = {"stop": "graceful stop (docker stop)", "kill": "hard kill (docker kill)"}


def settle(bench):
    """Both balancers up, the VIP on the first, the site answering through it."""
    lab = bench.lab
    for lb in bench.lbs:
        if not lab.running(lb):
            docker("start", lb)
    lab.wait_until("the VIP back on the first balancer", lambda: lab.vip_holders() == bench.lbs[:1], timeout=90)
    lab.wait_until("HAProxy on every balancer", lambda: all(
        "active" == bench.sh(lb, "systemctl is-active haproxy || true").strip() for lb in bench.lbs), timeout=60)
    time.sleep(3)


def once(bench, how):
    """One fault of the balancer holding the VIP, probed from the client."""
    settle(bench)
    lab = bench.lab
    active = lab.vip_holders()[0]
    seconds = 8
    probe = subprocess.Popen([DOCKER, "exec", "-i", bench.client, "python3", "-", lab.site, lab.vip, str(seconds)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    probe.stdin.write(PROBE)
    probe.stdin.close()
    time.sleep(2)
    fault = time.time()
    docker(how, active, timeout=60)
    samples = json.loads(probe.stdout.read())
    probe.wait()
    other = [lb for lb in bench.lbs if lb != active][0]
    before = [s for s in samples if s[0] < fault]
    after = [s for s in samples if s[0] >= fault]
    served = next((s for s in after if s[1] == 200 and s[2].startswith(other.split(".")[0])), None)
    return {"fault": how, "takeover_s": round(served[0] - fault, 3) if served else None,
            "failed_requests": sum(1 for s in after if s[1] != 200),
            # Once the other balancer answered, every request must succeed.
            "failed_after_takeover": sum(1 for s in after if served and s[0] > served[0] and s[1] != 200),
            "requests_after_fault": len(after), "ok_before_fault": all(s[1] == 200 for s in before)}


def takeover(bench):
    results = {how: [] for how in FAULTS}
    try:
        for _ in range(bench.takeovers):
            for how in FAULTS:
                results[how].append(once(bench, how))
    finally:
        settle(bench)
    rows = []
    for how, runs in results.items():
        times = [r["takeover_s"] for r in runs if r["takeover_s"] is not None]
        rows.append({"fault": FAULTS[how], "takeover_s": round(statistics.median(times), 3) if times else None,
                     "requests_lost": [r["failed_requests"] for r in runs], "runs": [r["takeover_s"] for r in runs],
                     "failed_after_takeover": sum(r["failed_after_takeover"] for r in runs)})
    return rows
