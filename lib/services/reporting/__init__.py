"""What leaves Switchboard for people and machines: exports, the status API's
answers and the Prometheus metrics."""
