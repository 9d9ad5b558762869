"""CDA R2 documents checked against the ANS's CI-SIS: the test content the user adds (`content`), hardened
parsing (`document`), the CDA XML Schema (`schema`), the volets' schematrons on Saxon-HE (`schematron`), the
volet of a document (`volets`), the header rules vigie checks itself (`header`) and the observation that
serves the checks (`observation`)."""
