"""modyard deployer: deployments of container modules on Docker: desired and observed state, logs"""
