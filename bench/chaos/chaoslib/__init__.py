"""colony's chaos harness (docs/reliability.md); chaos.py is the driver.

Modules, one concern each:
  schedule  the requests and the fault schedule, pure functions of the seed
  client    completion requests as a client sees them, verdicts, /v1/cluster
  cluster   the coordinator and three workers (loopback or network lab)
  rounds    a round of requests with one fault, and the fault actions
  report    the per-fault table, totals and docs/reliability.md's section
"""
