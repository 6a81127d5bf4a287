"""The pure schedule core: config, cron, timelines, catch-up, the ticker. Time is passed in."""
