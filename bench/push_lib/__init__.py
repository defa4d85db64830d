"""Helpers of ``bench/push``: the pushers compared and the one-shot portside push runner."""
