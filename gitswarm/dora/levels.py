"""The yardsticks a DORA figure is shown beside: the seed's targets and DORA's performance
levels. Pure data and comparisons; used by gitswarm/dora/report.py.

Levels are those of the *Accelerate State of DevOps Report 2019* (DORA / Google Cloud),
table "Software delivery performance for each of the four key metrics": the last report
with four levels whose ranges are contiguous enough to classify a number. Where its
ranges overlap or leave a gap, the rule written beside each classifier decides (and
docs/dora.md says the same):

    metric           elite             high              medium            low
    deploy freq.     on demand         1/day .. 1/week   1/week .. 1/month 1/month .. 1/6 mo
    lead time        < 1 day           1 day .. 1 week   1 week .. 1 month 1 .. 6 months
    time to restore  < 1 hour          < 1 day           < 1 day           1 week .. 1 month
    change failure   0-15 %            0-15 %            0-15 %            46-60 %
"""

from __future__ import annotations

from typing import Literal

Level = Literal["elite", "high", "medium", "low"]

LEVELS_SOURCE = "Accelerate State of DevOps Report 2019 (DORA)"

HOUR = 3600.0
DAY = 24 * HOUR
WEEK = 7 * DAY
MONTH = 30 * DAY

# The seed's "Success Metrics" (gitops-workflow-strategy.md).
TARGET_DEPLOYS_PER_DAY = 2.0  # "multiple deployments per day": at least two a day on average
TARGET_LEAD_TIME = 4 * HOUR  # "< 4 hours from commit to production" (the median)
TARGET_RESTORE = 15 * 60.0  # "mean time to recovery < 15 minutes" (the mean, as it says)
TARGET_FAILURE_RATE = 0.03  # "change failure rate < 3 %"
TARGET_DRIFT_INCIDENTS = 0  # "configuration drift: 0 incidents"
TARGET_TRACEABILITY = 1.0  # "audit completeness: 100 % traceability"


def frequency_level(per_day: float) -> Level:
    """Elite at one successful deployment a day or more (on demand); high at one a week or
    more; medium at one a month (30 days) or more; low below."""
    if per_day >= 1.0:
        return "elite"
    if per_day >= 1.0 / 7:
        return "high"
    if per_day >= 1.0 / 30:
        return "medium"
    return "low"


def lead_time_level(median: float) -> Level:
    """Of the median: elite under a day, high under a week, medium under a month (30
    days), low beyond (the report's low is one to six months; longer is low too)."""
    if median < DAY:
        return "elite"
    if median < WEEK:
        return "high"
    if median < MONTH:
        return "medium"
    return "low"


def restore_level(median: float) -> Level:
    """Of the median: elite under an hour, high under a day (the report gives high and
    medium both "less than one day": under a day is high), medium under a week (the gap
    between a day and a week is given to medium), low beyond."""
    if median < HOUR:
        return "elite"
    if median < DAY:
        return "high"
    if median < WEEK:
        return "medium"
    return "low"


def failure_rate_level(rate: float) -> Level:
    """Elite up to 15 % (the report puts elite, high and medium all at 0-15 %, so a rate
    alone cannot tell them apart: it gets the best); then Four Keys' dashboard steps: high
    up to 30 %, medium up to 45 %; low above (the report's low is 46-60 %)."""
    if rate <= 0.15:
        return "elite"
    if rate <= 0.30:
        return "high"
    if rate <= 0.45:
        return "medium"
    return "low"
