"""Deployments: the API's endpoints, the desired state they change, and container logs."""
