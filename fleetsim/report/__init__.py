"""fleetsim.report"""
