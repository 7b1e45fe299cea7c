"""smsflow's services and the runtime they share."""
