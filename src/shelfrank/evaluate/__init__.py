"""Offline evaluation: ranking metrics, page value on ground truth, reports."""
