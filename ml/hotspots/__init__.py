"""Hotspot forecasting of fraud-proceeds cash withdrawals in India."""
