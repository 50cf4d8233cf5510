"""fleetsim.scenario"""
