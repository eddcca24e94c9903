"""Components the runtime executes: the built-in core components and the executors that run
module components (amqp, http)."""
