# Reference values for models/matching from R MatchIt on the lalonde data.
# Run from the repository root, with MatchIt 4.5.1 + the two upstream nearest-neighbour fixes
# (see build_matchit_451_fixed.sh for why and how):
#   bash tests/reference/scripts/build_matchit_451_fixed.sh <MatchIt git checkout> /tmp/Rlib-matchit
#   MATCHIT_LIB=/tmp/Rlib-matchit Rscript tests/reference/scripts/matchit_lalonde.R
# Writes tests/data/lalonde.csv (the data shipped with MatchIt) and
# tests/reference/matchit_lalonde.json (per-case unit weights, subclasses, distances, ATTs, SEs).
if (nzchar(Sys.getenv("MATCHIT_LIB"))) .libPaths(c(Sys.getenv("MATCHIT_LIB"), .libPaths()))
suppressPackageStartupMessages({library(MatchIt); library(sandwich); library(jsonlite)})
if (packageVersion("MatchIt") < "4.5.1.9001")
  stop("MatchIt ", packageVersion("MatchIt"), " has the nearest-neighbour abs() bug; build the fixed one with ",
       "build_matchit_451_fixed.sh and set MATCHIT_LIB (MatchIt >= 4.5.3 works too)")
data("lalonde", package = "MatchIt")
d <- lalonde
d$unit <- rownames(lalonde)
write.csv(d[, c("unit", "treat", "age", "educ", "race", "married", "nodegree", "re74", "re75", "re78")],
          "tests/data/lalonde.csv", row.names = FALSE)

f <- treat ~ age + educ + race + married + nodegree + re74 + re75
att_of <- function(w, sub = NULL) {
  md <- d; md$w <- w
  md <- md[w > 0, ]
  fit <- lm(re78 ~ treat, data = md, weights = w)
  out <- list(att = unname(coef(fit)["treat"]),
              se_hc0 = unname(sqrt(vcovHC(fit, type = "HC0")["treat", "treat"])),
              se_hc1 = unname(sqrt(vcovHC(fit, type = "HC1")["treat", "treat"])))
  if (!is.null(sub)) {
    md$sub <- sub[w > 0]
    # sandwich::vcovCL default: type HC1, cadjust G/(G-1) and (n-1)/(n-k)
    out$se_cluster_subclass <- unname(sqrt(vcovCL(fit, cluster = ~sub)["treat", "treat"]))
    out$se_cluster_subclass_hc0 <- unname(sqrt(vcovCL(fit, cluster = ~sub, type = "HC0")["treat", "treat"]))
  }
  out
}
case <- function(name, call_args, m) {
  w <- unname(m$weights)
  sub <- if (!is.null(m$subclass)) as.integer(as.character(m$subclass)) else NULL
  res <- list(name = name, call = call_args, weights = w,
              n_matched_treated = sum(w > 0 & d$treat == 1), n_matched_control = sum(w > 0 & d$treat == 0))
  if (!is.null(sub)) res$subclass <- sub
  if (!is.null(m$distance)) res$distance <- unname(m$distance)
  if (!is.null(m$match.matrix)) {
    mm <- m$match.matrix
    res$match_matrix <- lapply(seq_len(nrow(mm)), function(i) unname(mm[i, ]))
    res$match_matrix_rows <- rownames(mm)
  }
  res$effect <- att_of(w, if (!is.null(sub)) sub else NULL)
  res
}
cases <- list()
run <- function(name, call_args, ...) {
  m <- matchit(f, data = lalonde, ...)
  cases[[name]] <<- case(name, call_args, m)
}
run("nearest_logit_largest", "matchit(f, lalonde)", method = "nearest")
run("nearest_logit_smallest", "m.order='smallest'", method = "nearest", m.order = "smallest")
run("nearest_logit_data", "m.order='data'", method = "nearest", m.order = "data")
run("nearest_probit", "distance='glm', link='probit'", method = "nearest", distance = "glm", link = "probit")
run("nearest_ratio2", "ratio=2", method = "nearest", ratio = 2)
run("nearest_replace_ratio2", "replace=TRUE, ratio=2", method = "nearest", replace = TRUE, ratio = 2)
run("nearest_replace", "replace=TRUE", method = "nearest", replace = TRUE)
run("nearest_caliper_std", "caliper=0.1 (std.caliper=TRUE)", method = "nearest", caliper = 0.1)
run("nearest_caliper_raw", "caliper=0.01, std.caliper=FALSE", method = "nearest", caliper = 0.01, std.caliper = FALSE)
run("nearest_caliper_std_tight", "caliper=0.02 (std.caliper=TRUE)", method = "nearest", caliper = 0.02)
run("nearest_caliper_raw_tight", "caliper=0.001, std.caliper=FALSE", method = "nearest", caliper = 0.001, std.caliper = FALSE)
run("nearest_caliper_smallest_ratio2", "caliper=0.05, m.order='smallest', ratio=2", method = "nearest", caliper = 0.05, m.order = "smallest", ratio = 2)
run("nearest_caliper_replace_ratio2", "caliper=0.02, replace=TRUE, ratio=2", method = "nearest", caliper = 0.02, replace = TRUE, ratio = 2)
run("nearest_exact_married", "exact=~married", method = "nearest", exact = ~married)
run("nearest_discard_both", "discard='both'", method = "nearest", discard = "both")
run("nearest_mahalanobis", "distance='mahalanobis'", method = "nearest", distance = "mahalanobis")
run("nearest_mahalanobis_replace_ratio2", "distance='mahalanobis', replace=TRUE, ratio=2", method = "nearest", distance = "mahalanobis", replace = TRUE, ratio = 2)
m <- matchit(treat ~ married + nodegree + race, data = lalonde, method = "exact")
cases[["exact_married_nodegree"]] <- case("exact_married_nodegree", "matchit(treat ~ married + nodegree + race, method='exact')", m)
run("cem_default", "method='cem' (Sturges bins)", method = "cem")
run("cem_cutpoints", "method='cem', cutpoints=list(age=c(25,35), educ=c(9,12), re74=c(1,5000), re75=c(1,5000))",
    method = "cem", cutpoints = list(age = c(25, 35), educ = c(9, 12), re74 = c(1, 5000), re75 = c(1, 5000)))

# IPW for the ATT (WeightIt is not installed): logit propensity by glm, treated 1, controls p/(1-p)
ps <- fitted(glm(f, data = lalonde, family = binomial()))
w_ipw <- ifelse(d$treat == 1, 1, ps / (1 - ps))
cases[["ipw_att"]] <- list(name = "ipw_att", call = "glm(f, binomial) ; w = treat + (1-treat) p/(1-p)",
                           weights = unname(w_ipw), distance = unname(ps), effect = att_of(w_ipw))

# Entropy balancing (Hainmueller 2012), ATT: ebal/WeightIt are not installed, so the dual is
# solved here independently (optim BFGS then Newton) -- controls' weights w_j = q_j exp(Z_j'l)/sum.
X <- model.matrix(~ age + educ + race + married + nodegree + re74 + re75, data = lalonde)[, -1]
ebal_solve <- function(X, treat, moments = 1) {
  Z <- X
  if (moments >= 2) {
    num <- apply(X, 2, function(x) length(unique(x)) > 2)
    Z <- cbind(X, X[, num, drop = FALSE]^2)
  }
  Zc <- Z[treat == 0, , drop = FALSE]
  tgt <- colMeans(Z[treat == 1, , drop = FALSE])
  # centre and scale for conditioning; the solution in weights is invariant
  s <- apply(Zc, 2, sd)
  C <- sweep(sweep(Zc, 2, tgt), 2, s, "/")
  obj <- function(l) { a <- C %*% l; m <- max(a); m + log(sum(exp(a - m))) }
  gr <- function(l) { a <- C %*% l; p <- exp(a - max(a)); p <- p / sum(p); colSums(C * as.vector(p)) }
  l <- optim(rep(0, ncol(C)), obj, gr, method = "BFGS", control = list(maxit = 10000, reltol = 1e-14))$par
  for (it in 1:100) {
    a <- C %*% l; p <- as.vector(exp(a - max(a))); p <- p / sum(p)
    g <- colSums(C * p)
    if (max(abs(g)) < 1e-13) break
    H <- crossprod(C * sqrt(p)) - tcrossprod(g)
    l <- l - solve(H, g)
  }
  a <- C %*% l; p <- as.vector(exp(a - max(a))); p <- p / sum(p)
  w <- numeric(length(treat)); w[treat == 1] <- 1; w[treat == 0] <- p * sum(treat == 1)
  list(weights = w, max_abs_constraint = max(abs(colSums(Zc * p) - tgt)))
}
for (mom in 1:2) {
  eb <- ebal_solve(X, d$treat, mom)
  nm <- paste0("ebal_moments", mom)
  cases[[nm]] <- list(name = nm, call = sprintf("independent dual solver in this script, moments=%d, covariates %s", mom,
                                                paste(colnames(X), collapse = ",")),
                      weights = eb$weights, max_abs_constraint = eb$max_abs_constraint, effect = att_of(eb$weights))
}
out <- list(source = paste("R MatchIt::matchit on MatchIt::lalonde; script tests/reference/scripts/matchit_lalonde.R;",
                            "MatchIt", as.character(packageVersion("MatchIt")), "from", find.package("MatchIt"),
                            "(4.5.1.9001 = 4.5.1 + upstream std::abs and ratio/replace fixes, build_matchit_451_fixed.sh)"),
            formula = deparse(f),
            versions = list(R = R.version.string, MatchIt = as.character(packageVersion("MatchIt")),
                            sandwich = as.character(packageVersion("sandwich"))),
            units = d$unit, cases = cases)
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, null = "null", na = "null"), "tests/reference/matchit_lalonde.json")
cat("wrote", length(cases), "cases\n")
