import sys, glob, numpy as np, os
for run in sys.argv[1:]:
    print("==", os.path.basename(run))
    for tw in sorted(glob.glob(f"{run}/samples/*-twin.npz")):
        base = tw.replace("-twin.npz", ".npz")
        if not os.path.exists(base): continue
        a, b = np.load(tw), np.load(base)
        if a["values_s_per_msg"].shape != b["values_s_per_msg"].shape: continue
        va, vb = a["values_s_per_msg"], b["values_s_per_msg"]; r = a["round_of_value"]
        rounds = sorted(set(r))
        E0, E1, E2, E3 = [], [], [], []
        for k in rounds[1:]:  # skip calibration round
            m = r == k
            if m.sum() < 2: continue
            la, lb = np.log(va[m]), np.log(vb[m])
            E0.append(np.log(va[m].mean() / vb[m].mean()))
            d = la - lb
            E1.append(np.median(d)); E2.append(d.mean())
            E3.append(np.median(la) - np.median(lb))
        name = os.path.basename(base)[:-4]
        print(f"{name[:45]:45s} n={len(E0)} sd% pooled {np.std(E0,ddof=1)*100:5.1f} slot-median {np.std(E1,ddof=1)*100:5.1f} slot-mean {np.std(E2,ddof=1)*100:5.1f} med-diff {np.std(E3,ddof=1)*100:5.1f}")
