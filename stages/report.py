"""Stage `report`: the run's report card, reports/summary.md and a self-contained summary.html."""
from lmforge.report.card import write_card
from lmforge.stage import run_stage


def main() -> None:
    charts = write_card()
    print(f"report: reports/summary.md, reports/summary.html ({charts} charts)")


if __name__ == "__main__":
    run_stage(main)
