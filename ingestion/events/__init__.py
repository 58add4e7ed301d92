"""The campaign event files: the landing folder into `raw.campaign_events`."""
