"""pgbench on lsm tables: `pgbench -i` with default_table_access_method = lsm,
then the built-in tpcb-like script with 8 clients for 60 s. Every client must
finish without errors (READ COMMITTED: waits on row locks, never a
serialization failure), and afterwards the balances must add up: the sum of
abalance over accounts, of tbalance over tellers and of bbalance over
branches each equal the sum of delta over history, and history holds one
row per committed transaction. Then a foreign-key workload (children on lsm
and heap referencing an lsm parent, concurrent parent updates and deletes)
must leave no child without its parent.

Usage: test_pgbench.py PG_HOME [--seconds N] [--scale N]
"""

import argparse
import os
import re
import subprocess

from pgcluster import Cluster, as_postgres, log, test_servers


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("pg_home")
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--clients", type=int, default=8)
    args = ap.parse_args()
    tag = args.pg_home.strip("/").replace("/", "_")
    cluster = Cluster(args.pg_home, f"pgbench-{tag}").initdb({"max_connections": "40"}).start()
    with test_servers(cluster, name="pgbench test"):
        cluster.sql("CREATE DATABASE bank")
        cluster.sql("CREATE EXTENSION strata", dbname="bank")
        cluster.sql("ALTER DATABASE bank SET default_table_access_method = lsm")
        pgbench = [f"{cluster.bindir}/pgbench", "-h", "127.0.0.1", "-p", str(cluster.port), "-U", "postgres"]
        init = subprocess.run(as_postgres(pgbench + ["-i", "-q", "-s", str(args.scale), "bank"]),
                              capture_output=True, text=True)
        assert init.returncode == 0, f"pgbench -i failed:\n{init.stdout}\n{init.stderr}"
        ams = cluster.sql("SELECT c.relname, a.amname FROM pg_class c JOIN pg_am a ON a.oid = c.relam "
                          "WHERE c.relname LIKE 'pgbench%' AND c.relkind = 'r' ORDER BY 1", dbname="bank")
        log(f"pgbench tables: {ams}")
        assert len(ams) == 4 and all(am == "lsm" for _, am in ams), ams

        out = subprocess.run(as_postgres(pgbench + ["-c", str(args.clients), "-j", "2", "-T", str(args.seconds),
                                                    "bank"]), capture_output=True, text=True)
        log(out.stdout.strip().splitlines()[-1] if out.stdout.strip() else "(no pgbench output)")
        assert out.returncode == 0, f"pgbench failed ({out.returncode}):\n{out.stdout}\n{out.stderr}"
        done = int(re.search(r"number of transactions actually processed: (\d+)", out.stdout).group(1))
        failed = re.search(r"number of failed transactions: (\d+)", out.stdout)
        assert failed is None or int(failed.group(1)) == 0, out.stdout
        assert done > 0, out.stdout

        sums = cluster.sql("SELECT (SELECT sum(abalance) FROM pgbench_accounts), "
                           "(SELECT sum(tbalance) FROM pgbench_tellers), "
                           "(SELECT sum(bbalance) FROM pgbench_branches), "
                           "(SELECT sum(delta) FROM pgbench_history), "
                           "(SELECT count(*) FROM pgbench_history), "
                           "(SELECT count(*) FROM pgbench_accounts)", dbname="bank")[0]
        log(f"{done} transactions in {args.seconds} s with {args.clients} clients; "
            f"sum(abalance), sum(tbalance), sum(bbalance), sum(delta) = {sums[:4]}; "
            f"{sums[4]} history rows, {sums[5]} accounts")
        accounts, tellers, branches, delta, history, naccounts = sums
        assert accounts == tellers == branches == delta, f"balances do not add up: {sums}"
        assert history == done, f"{history} history rows for {done} committed transactions"
        assert naccounts == 100000 * args.scale, f"{naccounts} accounts"
        # lsm_verify over every pgbench table, after VACUUM moved L0 into runs
        cluster.sql("VACUUM", dbname="bank")
        for t, _ in ams:
            problems = cluster.sql(f"SELECT * FROM strata.lsm_verify('{t}')", dbname="bank")
            assert not problems, f"{t}: {problems}"
        again = cluster.sql("SELECT (SELECT sum(abalance) FROM pgbench_accounts), "
                            "(SELECT sum(delta) FROM pgbench_history)", dbname="bank")[0]
        assert again == (accounts, delta), f"after VACUUM: {again}"

        # Foreign keys under concurrency: children (lsm and heap) inserted for
        # random parents while other clients update parents' non-key column and
        # delete/re-create parents. Races end in FK errors (caught), never in a
        # child without its parent. Two "drop" clients on the same parent race
        # as on heap: the second DELETE waits, finds the row deleted (READ
        # COMMITTED skips it) and its INSERT meets the first one's committed
        # row, a unique violation that is caught too.
        fk = lambda q: cluster.sql(q, dbname="bank")  # noqa: E731
        fk("CREATE TABLE fk_p (id int PRIMARY KEY, note int)")
        fk("CREATE TABLE fk_c (id bigserial PRIMARY KEY, parent int REFERENCES fk_p)")
        fk("CREATE TABLE fk_c_heap (id bigserial PRIMARY KEY, parent int REFERENCES fk_p) USING heap")
        fk("INSERT INTO fk_p SELECT g, 0 FROM generate_series(1, 50) g")
        scripts = {
            "child": "\\set p random(1, 60)\n"
                     "DO $$ BEGIN INSERT INTO fk_c (parent) VALUES (:p); INSERT INTO fk_c_heap (parent) VALUES (:p); "
                     "EXCEPTION WHEN foreign_key_violation THEN NULL; END $$;\n",
            "note": "\\set p random(1, 50)\nUPDATE fk_p SET note = note + 1 WHERE id = :p;\n",
            "drop": "\\set p random(1, 50)\n"
                    "DO $$ BEGIN DELETE FROM fk_p WHERE id = :p; INSERT INTO fk_p VALUES (:p, 0); "
                    "EXCEPTION WHEN foreign_key_violation OR unique_violation THEN NULL; END $$;\n",
        }
        argv = pgbench + ["-n", "-c", "6", "-j", "2", "-T", str(max(5, args.seconds // 3))]
        for name, weight in (("child", 5), ("note", 4), ("drop", 1)):
            path = f"{cluster.base}/fk_{name}.sql"
            with open(path, "w") as f:
                f.write(scripts[name])
            os.chmod(path, 0o644)
            argv += ["-f", f"{path}@{weight}"]
        out = subprocess.run(as_postgres(argv + ["bank"]), capture_output=True, text=True)
        assert out.returncode == 0, f"foreign-key workload failed:\n{out.stdout}\n{out.stderr}"
        done = re.search(r"number of transactions actually processed: (\d+)", out.stdout).group(1)
        orphans = cluster.sql("SELECT (SELECT count(*) FROM fk_c c WHERE NOT EXISTS (SELECT 1 FROM fk_p p WHERE p.id = c.parent)), "
                              "(SELECT count(*) FROM fk_c_heap c WHERE NOT EXISTS (SELECT 1 FROM fk_p p WHERE p.id = c.parent)), "
                              "(SELECT count(*) FROM fk_c), (SELECT count(*) FROM fk_p)", dbname="bank")[0]
        log(f"foreign keys: {done} transactions; orphans (lsm child, heap child) = {orphans[:2]}; "
            f"{orphans[2]} children, {orphans[3]} parents")
        assert orphans[:2] == (0, 0), f"children without parents: {orphans}"
        assert orphans[3] == 50, f"parents lost: {orphans}"
        for t in ("fk_p", "fk_c"):
            problems = cluster.sql(f"SELECT * FROM strata.lsm_verify('{t}')", dbname="bank")
            assert not problems, f"{t}: {problems}"
        log("pgbench test passed")


if __name__ == "__main__":
    main()
