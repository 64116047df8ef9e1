#!/usr/bin/env python3
"""Paper model of scuttled's rumor path (Demers et al. 1987 §1.4), to choose
--rumor_fanout and --rumor_k: push on receipt (a node that first hears an update forwards it
once to F random peers) plus rumor cycles (each hot node pushes to f random peers per cycle;
a cycle's contacts are judged together, feedback + consecutive counter k; the immediate
push is the first cycle's contacts). Prints, per (F, f, k): P(the immediate push alone
reaches every node), P(every node reached before all lose interest), the mean number of
nodes missed, messages per node and cycles per update.

  python3 bench/rumor_cycles_model.py [N] [trials]     (bench/README.md §2)
"""
import random
import sys


def run(n, fan, f, k, rng, max_cycles=100):
    infected = {0}
    counter = {0: 0}
    hot = {0}
    pending = {}  # node -> this cycle's result: 1 every peer knew, 2 some peer learned
    msgs = 0

    def push(src, m):
        nonlocal msgs
        stack = [(src, m)]
        while stack:
            s, cnt = stack.pop()
            for p in rng.sample([x for x in range(n) if x != s], cnt):
                msgs += 1
                if p in infected:
                    pending[s] = max(pending.get(s, 0), 1)
                else:
                    pending[s] = 2
                    infected.add(p)
                    counter[p] = 0
                    hot.add(p)
                    stack.append((p, fan))

    push(0, fan)
    burst = len(infected)
    cycles = 0
    while hot and cycles < max_cycles and f > 0:
        for x in list(hot):
            r = pending.pop(x, 0)
            if r == 2:
                counter[x] = 0
            elif r == 1:
                counter[x] += 1
                if counter[x] >= k:
                    hot.discard(x)
        if not hot:
            break
        cycles += 1
        for x in list(hot):
            push(x, f)
    return burst, len(infected), msgs, cycles


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    trials = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    rng = random.Random(1)
    print("N=%d  F f k: P(push alone reaches all)  P(all)  mean missed  msgs/node  cycles" % n)
    for fan, f, k in [(3, 0, 1), (3, 1, 1), (3, 1, 2), (3, 1, 4), (3, 2, 2), (3, 3, 1),
                      (3, 3, 2), (3, 3, 3)]:
        b_all = a_all = missed = msgs = cyc = 0
        for _ in range(trials):
            b, a, m, c = run(n, fan, f, k, rng)
            b_all += b == n
            a_all += a == n
            missed += n - a
            msgs += m
            cyc += c
        print("%d %d %d: %.3f %.3f %.3f %.2f %.1f" % (fan, f, k, b_all / trials, a_all / trials,
                                                     missed / trials, msgs / trials / n,
                                                     cyc / trials))


if __name__ == "__main__":
    main()
