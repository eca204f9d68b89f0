"""Forecasts: PV (pvlib clear-sky, scaled by measured performance), load by similar days,
EV sessions from history, and forecast accuracy."""
