"""A bounded CPU hog on one CPU: busy 60 % of each 50 ms, for at most N seconds."""
import os, sys, time
os.sched_setaffinity(0, {int(sys.argv[1])})
end = time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    t = time.monotonic()
    while time.monotonic() - t < 0.03:
        pass
    time.sleep(0.02)
