#!/usr/bin/python3
"""ppe-replay's command-line contract: bad input gets a clear error and a
non-zero exit; the hand-checked trace (hand_trace_test.cc) gives the same
figures through the CLI as JSON lines, one per policy, with the fields the
docs list; --csv and --plot write their files.

    cli_test.py PATH_TO_PPE_REPLAY
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

HAND = [0, 60, 0, 0, 60, 0, 0, 0, 0, 0, 0, 0, 120, 0, 0, 0]
HAND_FLAGS = ["--bucket-seconds", "120", "--capacity", "0.5", "--boot-seconds", "30,0",
              "--warmup-buckets", "0"]
failures = []


def run(binary, args):
    return subprocess.run([binary] + args, capture_output=True, text=True, timeout=60)


def expect_error(binary, args, needle, name):
    r = run(binary, args)
    if r.returncode == 0 or needle not in r.stderr:
        failures.append(f"{name}: rc={r.returncode}, stderr={r.stderr.strip()!r} "
                        f"(wanted a non-zero exit and {needle!r})")
    else:
        print(f"ok   {name}: {r.stderr.strip().splitlines()[-1]}")


def main():
    binary = sys.argv[1]
    tmp = tempfile.mkdtemp()
    try:
        def write(name, text):
            path = os.path.join(tmp, name)
            with open(path, "w") as f:
                f.write(text)
            return path

        empty = write("empty.txt", "")
        words = write("words.txt", "1\n2\nmany\n")
        negative = write("negative.txt", "1\n2\n-3\n4\n")
        short = write("short.txt", "1\n2\n3\n")
        hand = write("hand.txt", "\n".join(map(str, HAND)) + "\n")
        csv_hand = write("hand.csv", "period,count\n" + "".join(
            f"2020-01-01 00:{2 * i:02d}:00,{c}\n" for i, c in enumerate(HAND)))

        expect_error(binary, ["--counts", empty], "the file is empty", "empty file")
        expect_error(binary, ["--counts", words], "line 3: not a number: 'many'", "non-numeric")
        expect_error(binary, ["--counts", negative], "count 3 is negative", "negative count")
        expect_error(binary, ["--counts", short], "too short: 3 buckets", "too-short trace")
        expect_error(binary, ["--counts", hand, "--warmup-buckets", "16"], "too short",
                     "warm-up covers the trace")
        expect_error(binary, ["--counts", hand, "--policy", "magic"], "unknown policy 'magic'",
                     "unknown policy")
        expect_error(binary, ["--counts", hand, "--frobnicate", "1"], "unknown option",
                     "unknown option")
        expect_error(binary, ["--counts", os.path.join(tmp, "absent.txt")], "cannot read",
                     "missing file")
        expect_error(binary, ["--counts", hand, "--capacity", "-1"], "--capacity", "bad capacity")
        expect_error(binary, ["--counts", hand, "--boot-seconds", "30,x"], "--boot-seconds",
                     "bad boot seconds")
        expect_error(binary, [], "exactly one of", "no input")
        expect_error(binary, ["--counts", hand, "--level", "100"], "--level", "bad level")
        expect_error(binary, ["--counts", hand, "--cooldown", "0"], "--cooldown", "bad cooldown")
        r = run(binary, ["--counts", hand] + HAND_FLAGS +
                ["--policy", "ppe-no-forecast", "--level", "99", "--cooldown", "3"])
        knob = json.loads(r.stdout.splitlines()[0]).get("knob") if r.returncode == 0 else None
        if knob != "cooldown 3":
            failures.append(f"--cooldown: rc={r.returncode} knob {knob} {r.stderr}")
        else:
            print("ok   --level/--cooldown set the PPE's knobs")

        # An access log: two clients of one /24 with a desktop browser share a
        # profile; a phone in that /24 and a client of another /24 get their
        # own; 06:00 UTC is another time-of-day bucket (4 a day): 4 profiles.
        ua_desktop = "Mozilla/5.0 (X11; Linux x86_64) Firefox/38.0"
        ua_phone = "Mozilla/5.0 (iPhone; CPU iPhone OS 8_3 like Mac OS X) Mobile/12F70"
        log_lines = [
            ("198.51.100.7", "17/May/2015:10:05:03", ua_desktop),
            ("198.51.100.9", "17/May/2015:10:06:03", ua_desktop),
            ("198.51.100.9", "17/May/2015:10:07:03", ua_phone),
            ("203.0.113.1", "17/May/2015:10:08:03", ua_desktop),
            ("198.51.100.7", "17/May/2015:05:59:00", ua_desktop),
        ]
        log = write("access.log", "".join(
            f'{ip} - - [{t} +0000] "GET / HTTP/1.1" 200 512 "-" "{ua}"\n'
            for ip, t, ua in log_lines))
        r = run(binary, ["--log", log, "--capacity", "1", "--warmup-buckets", "0",
                         "--policy", "oracle"])
        if r.returncode != 0 or "5 profiles" in r.stderr or json.loads(
                r.stdout.splitlines()[0])["profiles"] != 4:
            failures.append(f"log profiles: rc={r.returncode} {r.stdout} {r.stderr}")
        else:
            print("ok   access log: 4 profiles from 5 requests")
        # A burst every hour at 300 s buckets (12 buckets), 6 hours: the default
        # periods (a day, a week) leave it out, and ppe-replay says how to name it.
        hourly = write("hourly.txt", "".join(f"{50 if t % 12 == 1 else 0}\n" for t in range(72)))
        r = run(binary, ["--counts", hourly, "--bucket-seconds", "300", "--capacity", "1",
                         "--policy", "oracle"])
        hint = "the demand repeats every 12 buckets"
        if r.returncode != 0 or hint not in r.stderr or "--period 12 --period 288" not in r.stderr:
            failures.append(f"cycle hint: rc={r.returncode} {r.stderr}")
        else:
            print("ok   cycle hint: " + r.stderr.strip().splitlines()[-1][:70] + "...")
        r = run(binary, ["--counts", hourly, "--bucket-seconds", "300", "--capacity", "1",
                         "--policy", "oracle", "--period", "12"])
        if r.returncode != 0 or hint in r.stderr:
            failures.append(f"no cycle hint with --period: rc={r.returncode} {r.stderr}")
        r = run(binary, ["--counts", hand] + HAND_FLAGS + ["--policy", "oracle"])
        if r.returncode != 0 or "repeats" in r.stderr:
            failures.append(f"no cycle hint on the hand trace: rc={r.returncode} {r.stderr}")

        expect_error(binary, ["--log", write("bad.log", "not a log line\n")],
                     "no request in the log parses", "unparseable log")

        out_csv = os.path.join(tmp, "out.csv")
        out_png = os.path.join(tmp, "out.png")
        r = run(binary, ["--counts", csv_hand] + HAND_FLAGS +
                ["--policy", "oracle", "--policy", "reactive,target-tracking",
                 "--csv", out_csv] + (["--plot", out_png] if shutil.which("gnuplot") else []))
        if r.returncode != 0:
            failures.append(f"hand trace: rc={r.returncode}: {r.stderr}")
            return
        lines = [json.loads(line) for line in r.stdout.splitlines()]
        by = {l["policy"]: l for l in lines}
        if [l["policy"] for l in lines] != ["oracle", "reactive", "target-tracking"]:
            failures.append(f"policies in order given: {[l['policy'] for l in lines]}")
        for l in lines:
            for key in ["policy", "cold_start_rate", "vm_seconds", "vm_seconds_vs_oracle",
                        "added_latency_ms", "scaling_actions_per_hour", "vms_created"]:
                if key not in l:
                    failures.append(f"{l['policy']}: no {key}")
            if set(l["added_latency_ms"]) != {"p50", "p99", "p99.9"}:
                failures.append(f"{l['policy']}: added_latency_ms {l['added_latency_ms']}")
        # Worked out in hand_trace_test.cc; the scored window is 16 x 120 s = 32 min.
        want = {
            "oracle": dict(cold_start_rate=0, vm_seconds=480, vm_seconds_vs_oracle=1,
                           vms_created=4, scaling_actions_per_hour=8 / (32 / 60)),
            "reactive": dict(cold_start_rate=0.25, vm_seconds=960, vm_seconds_vs_oracle=2,
                             vms_created=4, scaling_actions_per_hour=8 / (32 / 60)),
            "target-tracking": dict(cold_start_rate=0.75, vm_seconds=2520,
                                    vm_seconds_vs_oracle=5.25, vms_created=5,
                                    scaling_actions_per_hour=7 / (32 / 60)),
        }
        for policy, fields in want.items():
            for key, value in fields.items():
                got = by.get(policy, {}).get(key)
                if got is None or abs(got - value) > 1e-4 * max(1, abs(value)):
                    failures.append(f"{policy}.{key}: got {got}, want {value}")
        if by["reactive"]["added_latency_ms"]["p99"] != 15000:
            failures.append(f"reactive p99: {by['reactive']['added_latency_ms']}")
        with open(out_csv) as f:
            rows = f.read().splitlines()
        if len(rows) != 4 or not rows[0].startswith("policy,knob,"):
            failures.append(f"csv: {rows}")
        if shutil.which("gnuplot"):
            with open(out_png, "rb") as f:
                if f.read(8) != b"\x89PNG\r\n\x1a\n":
                    failures.append("plot: not a PNG")
        print(f"ok   hand trace through the CLI: {len(lines)} JSON lines")
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
    for f in failures:
        print("FAIL", f)
    sys.exit(1 if failures else 0)
