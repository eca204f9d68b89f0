"""The CEMS runtime: poll, store, forecast, plan, dispatch safely, on a schedule."""
