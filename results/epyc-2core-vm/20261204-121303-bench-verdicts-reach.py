"""Per cell of a bench_verdicts run (its --keep directory): the A/A comparisons' median 95 % reach
(the interval's farther end from 1) and half-width, on the headline metric.

    python3 20261204-121303-bench-verdicts-reach.py KEEP_DIR
"""
import pandas as pd, glob, sys
fr = pd.concat([pd.read_csv(f) for f in glob.glob(sys.argv[1] + '/verdicts-*/verdicts.csv')])
aa = fr[fr.case.str.split('-').str[1].str.startswith('alias') | fr.case.str.endswith('-twin')]
aa = aa.assign(cell=aa.case.str.split('-').str[0] + ' ' + aa.case.str.split('-').str[2],
               reach=(aa.ci_high - 1).abs().combine((1 - aa.ci_low).abs(), max))
head = aa[((aa.case.str.startswith('stream')) & (aa.metric == 'throughput_bps')) | ((aa.case.str.startswith('rr')) & (aa.metric == 'lat_p50_us'))]
print(head.groupby('cell').reach.median().map(lambda x: f'{x:.1%}'))
print("median 95 % half-width, (ci_high - ci_low) / 2:")
print(head.assign(half=(head.ci_high - head.ci_low) / 2).groupby('cell').half.median().map(lambda x: f'{x:.1%}'))
