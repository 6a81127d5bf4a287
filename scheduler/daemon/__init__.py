"""`cronlease run`'s loop: campaign for the lease, lead (plan, write) or follow, stop cleanly."""
