"""minadv.testing: "my attack never beats the proven optimum" in a user's own test suite.

`certificates`: exact results cached on disk, keyed by the network's weights, the image, the norm,
the box and the solver version, re-verified on load. `plugin`: the pytest plugin (entry point
`pytest11`, active wherever minadv is installed) with the fixtures `minadv_network`, `minadv_n1`,
`minadv_n2`, `mnist_test` and `optimum`.

Nothing is imported here: pytest loads the plugin in every run of every project in an environment
that has minadv, and that must not cost the import of torch.
"""
