# Strata — the two commands a newcomer needs are `make run` and `make test`.
.PHONY: run stop test bench

run:            ## install what is missing, build, start PG18 with Strata, open psql
	scripts/run.sh

stop:           ## stop the server `make run` started
	scripts/stop.sh

test:           ## every test layer on PostgreSQL 15 and 18
	scripts/test.sh

bench:          ## the full benchmark suite on an idle machine (BENCH_ARGS="--only lsm", ...)
	bench/run.sh $(BENCH_ARGS)
