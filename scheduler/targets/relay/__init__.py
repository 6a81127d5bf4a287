"""Delivery beyond the scheduler's Redis: the outbox relay's deliverers.

A queue whose target is PostgreSQL, RabbitMQ, NATS JetStream, Celery on RabbitMQ, or an in-Redis
system on ANOTHER Redis instance cannot be written inside the fenced enqueue script. The script
writes its runs to the outbox stream `{cronlease}:outbox:<queue>` instead (atomically with the
cursor, as a cronlease stream), and the leader's relay (daemon/relay.py) reads that stream in a
consumer group and hands batches to the queue's Deliverer (one module per system here), which
writes them with the system's own client and says how many the system confirmed durably. Only
those are acknowledged; the rest stay pending and are delivered again.
"""
