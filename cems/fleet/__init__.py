"""A broker's portfolio of sites: the portfolio file, synthetic portfolios, parallel
day-ahead planning on Dask distributed and the aggregated KPX bid."""
