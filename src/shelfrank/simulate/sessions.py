"""Sessions and homepage requests over the period.

Each user has Poisson(rate x activity x active days) sessions. A session has a start (day
uniform over the days the user is signed up, hour from a diurnal curve), a surface (the
preferred one 80% of the time), a region (home 92%), an **intent** (a leaf category drawn
75% from the user's taste at that moment, 25% from global demand) and 1-4 homepage
requests a few minutes apart. Half the sessions open with a search whose query names the
intent category; some later requests follow a search naming the intent's parent category.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shelfrank.simulate.catalog import DAY, Catalog
from shelfrank.simulate.scales import ScaleSpec
from shelfrank.simulate.users import Users, current_weights

# Share of sessions starting in each UTC hour: quiet nights, a morning and an evening peak.
_DIURNAL = np.array([0.4, 0.25, 0.15, 0.1, 0.1, 0.2, 0.6, 1.2, 1.6, 1.5, 1.3, 1.3, 1.5, 1.4, 1.2, 1.2, 1.3,
                     1.5, 1.9, 2.2, 2.3, 2.0, 1.5, 0.9])


@dataclass
class Requests:
    """Homepage requests sorted by time; searches ride along with the request they precede."""

    user: np.ndarray  # int32
    t: np.ndarray  # float64 seconds since start
    session: np.ndarray  # int64 session number (numbered by start time)
    surface: np.ndarray  # int8
    region: np.ndarray  # int8
    intent: np.ndarray  # int32 leaf category
    randomized: np.ndarray  # bool: served by the randomized logging policy
    search_query: np.ndarray  # int32 category named by a search just before the request, -1 none

    def __len__(self) -> int:
        return len(self.user)

    def slice(self, lo: int, hi: int) -> Requests:
        return Requests(**{k: v[lo:hi] for k, v in self.__dict__.items()})


def build_requests(spec: ScaleSpec, cat: Catalog, users: Users, rng: np.random.Generator) -> Requests:
    period = spec.period_seconds
    first_day = np.floor(np.maximum(users.signup_t, 0.0) / DAY)
    active_days = spec.n_days - first_day
    n_sessions = rng.poisson(spec.sessions_per_user_day * users.activity * active_days)
    user = np.repeat(np.arange(users.n_users, dtype=np.int32), n_sessions)
    n = len(user)
    day = first_day[user] + np.floor(rng.random(n) * active_days[user])
    hour = rng.choice(24, n, p=_DIURNAL / _DIURNAL.sum())
    start = np.minimum(day * DAY + hour * 3600 + rng.random(n) * 3600, period - 3 * 3600)
    start = np.round(start, 3)
    surface = np.where(rng.random(n) < 0.8, users.preferred_surface[user], rng.integers(0, 3, n)).astype(np.int8)
    region = np.where(rng.random(n) < 0.92, users.home_region[user],
                      rng.integers(0, spec.n_regions, n)).astype(np.int8)
    w = current_weights(users, user, start)
    cum = np.cumsum(w, axis=1)
    k = (rng.random(n)[:, None] * cum[:, -1:] > cum).sum(axis=1)
    taste_leaf = users.fav_leaf[user, np.minimum(k, w.shape[1] - 1)]
    leaf_p = cat.leaf_popularity[cat.leaf_ids]
    popular_leaf = cat.leaf_ids[rng.choice(len(cat.leaf_ids), n, p=leaf_p / leaf_p.sum())]
    intent = np.where(rng.random(n) < 0.75, taste_leaf, popular_leaf).astype(np.int32)
    searches_first = rng.random(n) < 0.5

    per_session = rng.choice(4, n, p=[0.45, 0.3, 0.15, 0.1]) + 1
    s = np.repeat(np.arange(n), per_session)
    first = np.concatenate([[0], np.cumsum(per_session)[:-1]])
    k_in_session = np.arange(len(s)) - first[s]
    gap = np.where(k_in_session > 0, 60 + np.minimum(rng.exponential(240, len(s)), 900), 0.0)
    offset = np.cumsum(gap) - np.repeat(np.cumsum(gap)[first], per_session)
    t = start[s] + np.where(searches_first[s], 30.0, 0.0) + offset
    later_search = (k_in_session > 0) & (rng.random(len(s)) < 0.15)
    query = np.full(len(s), -1, dtype=np.int32)
    query[(k_in_session == 0) & searches_first[s]] = intent[s][(k_in_session == 0) & searches_first[s]]
    query[later_search] = cat.category_parent[intent[s][later_search]]

    # Number sessions by start time; sort requests by time.
    session_number = np.empty(n, dtype=np.int64)
    session_number[np.argsort(start, kind="stable")] = np.arange(n)
    order = np.argsort(t, kind="stable")
    return Requests(
        user=user[s][order], t=np.round(t[order], 3), session=session_number[s][order],
        surface=surface[s][order], region=region[s][order], intent=intent[s][order],
        randomized=rng.random(len(s))[order] < spec.randomized_share, search_query=query[order],
    )
