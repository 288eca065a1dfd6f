import csv, sys, math, statistics as st, collections, glob, re
def load(d):
    t = collections.defaultdict(dict)
    for r in csv.DictReader(open(d + '/trials.csv')):
        if r['throughput_bps']:
            t[r['case']][int(r['round'])] = float(r['throughput_bps'])
    return t
groups = collections.defaultdict(list)
for d in sorted(glob.glob(sys.argv[1])):
    v = re.sub(r'^.*/q\d+-', '', d)
    t = load(d)
    base = [c for c in t if '-sendall-' in c and 'twin' not in c][0]
    sds = []; lv = []
    for c in t:
        if c == base: continue
        ds = [math.log(t[c][r] / t[base][r]) for r in t[c] if r in t[base]]
        sds.append(st.stdev(ds))
    lv = st.median(t[base].values()) / 1e9
    import numpy as np
    slow = []
    for f in glob.glob(d + '/samples/*.npz'):
        z = np.load(f); g = z['v_bytes'] * 8 / z['v_elapsed_ns']; slow.append(np.mean(g < 30))
    groups[v].append((st.mean(sds), lv, st.mean(slow)))
for v, xs in groups.items():
    print(f"{v:8s} n={len(xs)} mean per-round sd of ln ratio {st.mean(x[0] for x in xs):.3f} ({' '.join(f'{x[0]:.3f}' for x in xs)})  sendall median {st.mean(x[1] for x in xs):.1f} Gbit/s  slow share {st.mean(x[2] for x in xs):.0%}")
