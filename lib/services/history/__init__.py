"""The check history's read model: current status per connection and product,
and the hourly and daily rollups uptime is read from."""
