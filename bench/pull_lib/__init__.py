"""Helpers of ``bench/pull``: bench images, measured runs of each puller, the report."""
