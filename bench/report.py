"""The report half of the benchmarks: markdown tables and the file they go
to (rewritten after every section, so a long run leaves a readable report),
and the PNG plots. A mixin of `run.Bench`."""

import os
import platform
import time


class Report:
    def table(self, title, header, rows):
        self.report.append(f"\n### {title}\n")
        self.report.append("| " + " | ".join(header) + " |")
        self.report.append("|" + "---|" * len(header))
        for r in rows:
            self.report.append("| " + " | ".join(str(c) for c in r) + " |")

    # -- plots ---------------------------------------------------------------
    def plt(self):
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        return plt

    def save(self, fig, name):
        path = os.path.join(self.out_dir, f"{self.stem}-{name}")
        fig.savefig(path, dpi=100, bbox_inches="tight")
        self.plt().close(fig)
        self.plots.append(os.path.basename(path))

    def plot_bars(self, name, title, xs, series, xlabel):
        plt = self.plt()
        fig, ax = plt.subplots(figsize=(6, 3.5))
        w = 0.38
        for k, (label, ys) in enumerate(zip(("heap", "lsm"), series)):
            ax.bar([i + (k - 0.5) * w for i in range(len(xs))], ys, w, label=label)
        ax.set_xticks(range(len(xs)), [str(x) for x in xs])
        ax.set_xlabel(xlabel)
        ax.set_ylabel("TPS")
        ax.set_title(title)
        ax.legend()
        self.save(fig, name)

    def plot_churn(self, series):
        plt = self.plt()
        fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.5))
        for am, pts in series.items():
            a.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=am)
            b.plot([p[0] for p in pts], [p[2] for p in pts], marker="o", label=am)
        a.set_title("table size (MB)")
        b.set_title("WAL written (MB)")
        for ax in (a, b):
            ax.set_xlabel("round")
            ax.legend()
        self.save(fig, "churn.png")

    def plot_recall(self, name, title, curves):
        plt = self.plt()
        fig, ax = plt.subplots(figsize=(6, 4))
        for label, curve in curves.items():
            line, = ax.plot([c[1] for c in curve], [c[5] for c in curve], marker="o",
                            label=f"{label} (looped in the backend)")
            ax.plot([c[1] for c in curve], [c[2] for c in curve], marker=".", linestyle="--",
                    color=line.get_color(), label=f"{label} (per client round trip)")
            for ef, rec, _, _, _, qps in curve:
                ax.annotate(str(ef), (rec, qps), fontsize=7)
        ax.set_xlabel("recall@10")
        ax.set_ylabel("queries per second (1 backend)")
        ax.set_title(title)
        ax.legend()
        self.save(fig, name)

    # -- run -------------------------------------------------------------
    def write(self, partial=None, done=False):
        """Writes the report so far; a long run leaves a readable file after
        every section. `partial` is an unfinished table (title, rows)."""
        elapsed = time.perf_counter() - self.t0
        header = [
            f"# Strata benchmarks — {self.today} ({self.mode})",
            "",
            f"* server: {self.version}",
            f"* machine: {platform.machine()}, {os.cpu_count()} CPUs, "
            f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB RAM, {platform.platform()}",
            "* settings: " + ", ".join(f"{k} = {v}" for k, v in self.conf.items()),
            f"* suite time: {elapsed:.0f} s{'' if done else ' so far (the run is still going)'}; "
            f"command: `bench/run.sh --mode {self.mode}{f' --only {self.only}' if self.only else ''}`",
        ]
        if self.only != "hnsw":
            header.append("* ratios are lsm / heap (above 1: lsm is faster or larger)")
        body = header + self.report
        if partial:
            body += [f"\n### (in progress) {partial[0]}: {len(partial[1])} rows so far\n"]
            body += ["| " + " | ".join(str(c) for c in r) + " |" for r in partial[1]]
        body += ["", "## Plots", ""] + [f"![{p}]({p})" for p in self.plots]
        path = os.path.join(self.out_dir, f"{self.stem}.md")
        with open(path, "w") as f:
            f.write("\n".join(body) + "\n")
        return path
