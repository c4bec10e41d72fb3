"""The conversion webhook side of the operator: ConversionReview handling, serving
certificates, the HTTPS server and the stored-version migration."""
