"""Stored runs -> numbers: reading runs, statistics, comparisons, quality findings.

No matplotlib, no rich, and nothing from run, report or cli (a test holds it to that).
"""
