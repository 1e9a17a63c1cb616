"""Where elements come from: archives of MRT files (RouteViews, RIPE RIS) and the RIS Live stream."""
