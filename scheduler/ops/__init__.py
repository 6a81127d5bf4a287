"""Operations plumbing: metrics, HTTP probes, sd_notify, logging, config file watch, failpoints."""
