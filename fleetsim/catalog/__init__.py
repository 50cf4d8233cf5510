"""fleetsim.catalog"""
