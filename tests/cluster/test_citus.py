"""Citus with lsm tables (optional: skipped when Citus is not installed).

Citus is not in Debian's archive; build it from its source against the same
PostgreSQL (`./configure PG_CONFIG=...; make install`) to run this test. A
coordinator and two workers on loopback, all with `citus,strata` preloaded
and `wal_level = logical`: a distributed lsm table with a strata_hnsw index
(k-NN merged across shards, checked against exact search), then an online
shard move (`citus_move_shard_placement`, logical replication — lsm changes
decoded from Strata's row records) while a client keeps inserting: no row is
lost, none doubled, and the moved shard's rows are where Citus says.

Usage: test_citus.py PG_HOME
"""

import os
import random
import subprocess
import sys
import threading
import time

from pgcluster import Cluster, log, test_servers

DIM = 8


def citus_installed(pg_home):
    share = subprocess.run([os.path.join(pg_home, "bin", "pg_config"), "--sharedir"],
                           capture_output=True, text=True, check=True).stdout.strip()
    return os.path.exists(os.path.join(share, "extension", "citus.control"))


def vec(rng):
    return "[" + ",".join(f"{rng.uniform(-1, 1):.4f}" for _ in range(DIM)) + "]"


def main(pg_home):
    if not citus_installed(pg_home):
        log("test_citus skipped: Citus is not installed in this PostgreSQL "
            "(build it from its source to run this test)")
        return
    conf = {
        "shared_preload_libraries": "'citus,strata'",
        "wal_level": "logical",
        "max_replication_slots": "20",
        "max_wal_senders": "20",
        "max_worker_processes": "20",
        "citus.node_conninfo": "'sslmode=disable'",
        "strata.hnsw_ef_search": "200",  # on every shard (SET would stay on the coordinator)
    }
    coord = Cluster(pg_home, "citus_coord").initdb(conf)
    workers = [Cluster(pg_home, f"citus_w{i}").initdb(conf) for i in (1, 2)]
    with test_servers(coord, *workers, name="test_citus"):
        for c in [coord] + workers:
            c.start()
            c.sql("CREATE EXTENSION citus")
            c.sql("CREATE EXTENSION strata")
        coord.sql("SELECT citus_set_coordinator_host('127.0.0.1', %s)", params=(coord.port,))
        for w in workers:
            coord.sql("SELECT citus_add_node('127.0.0.1', %s)", params=(w.port,))
        rng = random.Random(3)
        with coord.connect() as conn:
            conn.execute(f"CREATE TABLE docs (id bigint PRIMARY KEY, grp int, emb vector({DIM})) USING lsm")
            conn.execute("SELECT create_distributed_table('docs', 'id', shard_count := 8)")
            with conn.cursor() as cur, cur.copy("COPY docs FROM STDIN") as cp:
                for i in range(1, 20_001):
                    cp.write_row((i, i % 10, vec(rng)))
            conn.execute("CREATE INDEX docs_emb ON docs USING strata_hnsw (emb vector_l2_ops)")
            ams = {r[0] for r in conn.execute(
                "SELECT DISTINCT result FROM run_command_on_shards('docs', "
                "$$SELECT amname FROM pg_class c JOIN pg_am a ON a.oid = c.relam WHERE c.oid = '%s'::regclass$$)")}
            assert ams == {"lsm"}, ams
            # k-NN across shards: strata_hnsw against exact search
            hits = 0
            for _ in range(10):
                q = vec(rng)
                got = [r[0] for r in conn.execute(
                    "SELECT id FROM docs ORDER BY emb <-> %s::vector LIMIT 10", (q,))]
                # "+ 0": an ordering no index matches, so every shard sorts exactly
                exact = [r[0] for r in conn.execute(
                    "SELECT id FROM docs ORDER BY (emb <-> %s::vector) + 0, id LIMIT 10", (q,))]
                hits += len(set(got) & set(exact))
            log(f"k-NN across 8 lsm shards: {hits}/100 of the exact neighbours")
            assert hits >= 95, hits

        # an online move while a client keeps inserting
        stop = threading.Event()
        written = []

        def writer():
            i = 100_000
            with coord.connect() as c:
                while not stop.is_set():
                    c.execute("INSERT INTO docs VALUES (%s, %s, %s)", (i, i % 10, vec(random.Random(i))))
                    written.append(i)
                    i += 1

        t = threading.Thread(target=writer)
        t.start()
        time.sleep(1)
        src, dst = workers
        shard = coord.sql("SELECT shardid FROM pg_dist_shard_placement JOIN pg_dist_shard USING (shardid) "
                          "WHERE logicalrelid = 'docs'::regclass AND nodeport = %s ORDER BY shardid LIMIT 1",
                          params=(src.port,))[0][0]
        coord.sql("SELECT citus_move_shard_placement(%s, '127.0.0.1', %s, '127.0.0.1', %s, "
                  "shard_transfer_mode := 'force_logical')", params=(shard, src.port, dst.port))
        time.sleep(1)
        stop.set()
        t.join(60)
        where = coord.sql("SELECT nodeport FROM pg_dist_shard_placement WHERE shardid = %s",
                          params=(shard,))
        assert where == [(dst.port,)], where
        total, distinct = coord.sql("SELECT count(*), count(DISTINCT id) FROM docs")[0]
        want = 20_000 + len(written)
        assert (total, distinct) == (want, want), f"{total} rows ({distinct} distinct), want {want}"
        during = {r[0] for r in coord.sql("SELECT id FROM docs WHERE id >= 100000")}
        assert during == set(written), f"{len(set(written) - during)} rows written during the move are missing"
        log(f"online shard move of shard {shard}: {len(written)} rows written meanwhile, none lost")


if __name__ == "__main__":
    main(sys.argv[1])
