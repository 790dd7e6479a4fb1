# Reference values for the static TWFE estimator, computed with R plm (two-way within).
# Inputs: CSVs written by plm_twfe.py. Output: tests/reference/plm_twfe.json
suppressPackageStartupMessages({library(plm); library(sandwich); library(lmtest); library(jsonlite)})
dir <- "/tmp/cluster_impact_ref"
res <- list(source = paste0("R ", R.version$major, ".", R.version$minor, ", plm ", packageVersion("plm"),
                            ", sandwich ", packageVersion("sandwich"),
                            "; script tests/reference/scripts/plm_twfe.R"))
fit_one <- function(df, fml, id) {
  p <- pdata.frame(df, index = c(id, "year"))
  m <- plm(fml, data = p, model = "within", effect = "twoways")
  # Arellano cluster-by-unit vcov with HC1-type dof: G/(G-1) * (N-1)/(N-K), K = slope count
  V <- vcovHC(m, method = "arellano", type = "HC1", cluster = "group")
  list(coef = as.list(coef(m)), se_iid = as.list(sqrt(diag(vcov(m)))),
       se_cluster_hc1 = as.list(sqrt(diag(V))), nobs = nobs(m),
       call = paste(deparse(fml), "plm(model='within', effect='twoways')"))
}
mp <- read.csv(file.path(dir, "mpdta.csv"))
res$mpdta_post <- fit_one(mp, lemp ~ post, "countyreal")
jt <- read.csv(file.path(dir, "jtrain.csv"))
jt <- jt[!is.na(jt$lscrap), ]
res$jtrain_post <- fit_one(jt, lscrap ~ post, "fcode")
# Wooldridge, Introductory Econometrics, Example 14.1 specification (grant and its lag,
# year effects absorbed by the two-way within transformation)
res$jtrain_example_14_1 <- fit_one(jt, lscrap ~ grant + grant_1, "fcode")
# one-way within with year dummies, as printed in the textbook (same grant coefficients)
p <- pdata.frame(jt, index = c("fcode", "year"))
m1 <- plm(lscrap ~ d88 + d89 + grant + grant_1, data = p, model = "within")
res$jtrain_example_14_1_oneway <- list(coef = as.list(coef(m1)), se_iid = as.list(sqrt(diag(vcov(m1)))), nobs = nobs(m1))
# first differences 1987-1989 (Example 13.x style): d.lscrap ~ d.grant (+ intercept)
mfd <- plm(lscrap ~ grant + grant_1 + d89, data = p, model = "fd")
res$jtrain_fd <- list(coef = as.list(coef(mfd)), se_iid = as.list(sqrt(diag(vcov(mfd)))), nobs = nobs(mfd))
writeLines(toJSON(res, auto_unbox = TRUE, digits = NA, pretty = TRUE), "tests/reference/plm_twfe.json")
cat("wrote tests/reference/plm_twfe.json\n")
