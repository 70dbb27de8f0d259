"""The embedded local mode: an AWS endpoint, a Lambda and a Batch on one machine."""
