"""Forecasts of fraud-linked cash withdrawals per H3 res-8 cell and day, and their evaluation."""
