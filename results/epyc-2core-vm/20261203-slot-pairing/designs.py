import sys, numpy as np, pandas as pd
sys.path.insert(0, '/work/main/bench'); sys.path.insert(0, '/work/main/src')
import _verdicts_stats as vs
from flushbench.analysis import verdicts as V
from flushbench.analysis.cells import Comparison
from flushbench.analysis.ratios import read_trials, run_comparisons
from flushbench.analysis.runs import open_runs

def rebuild(run, slotted):
    comps = run_comparisons(run)
    wl = {str(c): str(c).split('-')[0] for c in run.trials['case'].unique()}
    return V.build(run.trials, comps, wl, slots=run.slot_figures if slotted else None)

aliases = [f'alias_{c}' for c in 'abcde']
factors = {f'slow{p}': p / 100 for p in (3, 5, 10)} | {f'slow{p}_p50': p / 100 for p in (3, 5, 10)}
for group in sys.argv[1:]:
    dirs = group.split(',')
    runs = open_runs(dirs)
    print('==', group)
    for slotted in (False, True):
        ver = pd.concat([rebuild(r, slotted) for r in runs], ignore_index=True)
        aa = vs.aa_counts(vs.aa_rows(ver, aliases)); aah = vs.aa_counts(vs.aa_rows(ver, aliases, True))
        tab = vs.power_table(vs.power_rows(ver, factors))
        noise = {c['cell']: round(c['round_sd'] * 100, 1) for c in vs.cell_noise(vs.aa_rows(ver, aliases, True))}
        print('slots' if slotted else 'trial', f"AA {aa['called']}/{aa['comparisons']} head {aah['called']}/{aah['comparisons']}",
              'power', ' '.join(f"{t['factor']:.2f}:{t['worse']}/{t['tries']}({t['worse_without_bh']})" for t in tab), noise)
