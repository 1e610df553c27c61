"""Patient discovery as initiating gateway: the ITI-55 fan-out and its wiring."""
