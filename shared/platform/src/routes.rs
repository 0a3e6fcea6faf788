//! Every route of the API, declared once: method, path template (as API Gateway and the
//! OpenAPI document write it), the operation (its OpenAPI `operationId`) and the function
//! that serves it. A function's handler asks [`find`] which operation a request is and gets
//! its path parameters by name; an unknown path is 404 and a known path with another method
//! 405 with `Allow`, both as problem details.
//!
//! To add a route, add it here; the test below names what else must say the same (the
//! template's event, the local router in `Cargo.toml`, the OpenAPI path) and fails until
//! they do.

use crate::http::Problem;
use http::{Method, StatusCode};

/// One operation of the API, named as its OpenAPI `operationId`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    LookupAnonymousMeterReading,
    SubmitAnonymousMeterReading,
    VerifyRegistration,
    Register,
    Login,
    Logout,
    ChangePassword,
    RequestPasswordReset,
    ConfirmPasswordReset,
    GetAccount,
    DeleteAccount,
    AddCustomerNumber,
    ExportMyData,
    GetDashboard,
    ListRequests,
    GetCustomer,
    RequestCustomerDataChange,
    ChangeContactData,
    GetAccountContracts,
    ChangeBillingAddress,
    GetContract,
    TerminateContract,
    GetTerminationOptions,
    GetInstallmentPlan,
    RequestInstallmentChange,
    GetBankDetails,
    ChangeBankDetails,
    RevokeDirectDebitMandate,
    GetProducts,
    GetCodeList,
    GetMeterReadings,
    SubmitMeterReading,
    GetConsumption,
    GetReadingRange,
    GetDocuments,
    UploadDocument,
    DownloadDocument,
    CreateUploadLink,
    SendMessage,
}

impl Operation {
    /// The OpenAPI `operationId`: the name with a lower-case first letter.
    pub fn operation_id(self) -> String {
        let name = format!("{self:?}");
        let mut chars = name.chars();
        chars.next().map(|c| c.to_ascii_lowercase().to_string() + chars.as_str()).unwrap_or_default()
    }
}

/// A route: which function serves which method on which path template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub operation: Operation,
    pub function: &'static str,
}

const fn route(method: &'static str, path: &'static str, operation: Operation, function: &'static str) -> Route {
    Route { method, path, operation, function }
}

use Operation as O;

/// The API: every route, by capability.
pub const ROUTES: &[Route] = &[
    // 1, 2: registration, login, password, account.
    route("POST", "/v1/registrations/verify", O::VerifyRegistration, "registration"),
    route("POST", "/v1/registrations", O::Register, "registration"),
    route("POST", "/v1/sessions", O::Login, "sessions"),
    route("DELETE", "/v1/sessions/current", O::Logout, "sessions"),
    route("PUT", "/v1/me/password", O::ChangePassword, "sessions"),
    route("POST", "/v1/password-resets", O::RequestPasswordReset, "sessions"),
    route("POST", "/v1/password-resets/confirm", O::ConfirmPasswordReset, "sessions"),
    route("GET", "/v1/me", O::GetAccount, "account"),
    route("DELETE", "/v1/me", O::DeleteAccount, "account"),
    route("POST", "/v1/me/customer-numbers", O::AddCustomerNumber, "account"),
    route("GET", "/v1/me/export", O::ExportMyData, "account"),
    // 3: the dashboard and the requests.
    route("GET", "/v1/me/dashboard", O::GetDashboard, "dashboard"),
    route("GET", "/v1/me/requests", O::ListRequests, "requests"),
    // 4: customer data.
    route("GET", "/v1/customers/{customerNumber}", O::GetCustomer, "customer"),
    route("PATCH", "/v1/customers/{customerNumber}", O::RequestCustomerDataChange, "customer"),
    route("PATCH", "/v1/customers/{customerNumber}/contact", O::ChangeContactData, "customer"),
    // 5: contracts.
    route("GET", "/v1/contract-accounts/{accountNumber}/contracts", O::GetAccountContracts, "contracts"),
    route("PUT", "/v1/contract-accounts/{accountNumber}/billing-address", O::ChangeBillingAddress, "contracts"),
    route("GET", "/v1/contracts/{contractNumber}", O::GetContract, "contracts"),
    route("POST", "/v1/contracts/{contractNumber}/terminations", O::TerminateContract, "termination"),
    route("GET", "/v1/contracts/{contractNumber}/termination-options", O::GetTerminationOptions, "termination"),
    // 6, 8: installments, bank details.
    route("GET", "/v1/contract-accounts/{accountNumber}/installment-plan", O::GetInstallmentPlan, "installments"),
    route(
        "POST",
        "/v1/contract-accounts/{accountNumber}/installment-changes",
        O::RequestInstallmentChange,
        "installments",
    ),
    route("GET", "/v1/contract-accounts/{accountNumber}/bank-details", O::GetBankDetails, "bank-details"),
    route("PUT", "/v1/contract-accounts/{accountNumber}/bank-details", O::ChangeBankDetails, "bank-details"),
    route(
        "DELETE",
        "/v1/contract-accounts/{accountNumber}/direct-debit-mandate",
        O::RevokeDirectDebitMandate,
        "bank-details",
    ),
    // 7: meter readings.
    route("POST", "/v1/anonymous/meter-readings/lookup", O::LookupAnonymousMeterReading, "meter-readings"),
    route("POST", "/v1/anonymous/meter-readings", O::SubmitAnonymousMeterReading, "meter-readings"),
    route("GET", "/v1/meters/{meterNumber}/readings", O::GetMeterReadings, "meter-readings"),
    route("POST", "/v1/meters/{meterNumber}/readings", O::SubmitMeterReading, "meter-readings"),
    route("GET", "/v1/meters/{meterNumber}/consumption", O::GetConsumption, "meter-readings"),
    route("GET", "/v1/meters/{meterNumber}/reading-range", O::GetReadingRange, "meter-readings"),
    // 9: documents.
    route("GET", "/v1/me/documents", O::GetDocuments, "documents"),
    route("POST", "/v1/me/documents", O::UploadDocument, "documents"),
    route("GET", "/v1/me/documents/{documentId}", O::DownloadDocument, "documents"),
    route("POST", "/v1/me/document-uploads", O::CreateUploadLink, "documents"),
    // 10, 11: messages, products and code lists.
    route("POST", "/v1/messages", O::SendMessage, "messages"),
    route("GET", "/v1/products", O::GetProducts, "catalog"),
    route("GET", "/v1/code-lists/{name}", O::GetCodeList, "catalog"),
];

/// A function's `handle` from its routes: each operation it serves and the handler method
/// that takes the [`crate::http::Call`]; any other route is 404.
///
/// ```ignore
/// portal_platform::handle_routes!(Api, "contracts", {
///     GetContract => contract,
///     ChangeBillingAddress => change_billing,
/// });
/// ```
#[macro_export]
macro_rules! handle_routes {
    ($api:ty, $function:literal, { $($operation:ident => $handler:ident),+ $(,)? }) => {
        impl $api {
            pub async fn handle(
                &self,
                req: $crate::lambda_http::Request,
            ) -> Result<$crate::lambda_http::Response<$crate::lambda_http::Body>, ::std::convert::Infallible> {
                $crate::http::serve_routes(req, $function, |call| async move {
                    match call.operation() {
                        $($crate::routes::Operation::$operation => self.$handler(&call).await,)+
                        _ => Err($crate::http::Problem::not_found()),
                    }
                })
                .await
            }
        }
    };
}

/// The path parameters of a matched route, by the names of its template.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathParams(Vec<(&'static str, String)>);

impl PathParams {
    /// The parameter `name`, parsed into its type; a value that does not parse is answered
    /// 404 like an unknown id.
    pub fn get<T, E>(&self, name: &str, parse: impl Fn(&str) -> Result<T, E>) -> Result<T, Problem> {
        let (_, raw) = self.0.iter().find(|(n, _)| *n == name).ok_or_else(Problem::not_found)?;
        parse(raw).map_err(|_| Problem::not_found())
    }
}

/// The parameters if `path` fits `template` (`{name}` stands for one non-empty segment).
fn fit(template: &'static str, path: &str) -> Option<PathParams> {
    let (mut t, mut p) = (template.split('/'), path.split('/'));
    let mut params = Vec::new();
    loop {
        match (t.next(), p.next()) {
            (None, None) => return Some(PathParams(params)),
            (Some(t), Some(p)) => match t.strip_prefix('{').and_then(|n| n.strip_suffix('}')) {
                Some(name) if !p.is_empty() => params.push((name, p.to_owned())),
                Some(_) => return None,
                None if t == p => {}
                None => return None,
            },
            _ => return None,
        }
    }
}

/// The route of a request and its path parameters: 404 for a path no route has, 405 with
/// `Allow` for a path some route has with another method.
pub fn find(method: &Method, path: &str) -> Result<(&'static Route, PathParams), Problem> {
    let fitting: Vec<(&'static Route, PathParams)> =
        ROUTES.iter().filter_map(|r| fit(r.path, path).map(|params| (r, params))).collect();
    if fitting.is_empty() {
        return Err(Problem::not_found());
    }
    if let Some(found) = fitting.iter().find(|(r, _)| r.method == method.as_str()) {
        return Ok(found.clone());
    }
    let mut allowed: Vec<&str> = fitting.iter().map(|(r, _)| r.method).collect();
    allowed.sort_unstable();
    allowed.dedup();
    Err(Problem::method_not_allowed(&allowed.join(", ")))
}

impl Problem {
    /// 405: the path exists, with other methods (`Allow`).
    pub fn method_not_allowed(allow: &str) -> Self {
        let mut problem = Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
            format!("This resource answers {allow} only."),
        );
        problem.allow = Some(allow.into());
        problem
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::collections::BTreeSet;

    type Declared = BTreeSet<(String, String, String)>;

    fn ours(with_function: bool) -> Declared {
        ROUTES
            .iter()
            .map(|r| {
                let third = if with_function { r.function.to_owned() } else { r.operation.operation_id() };
                (r.method.to_owned(), r.path.to_owned(), third)
            })
            .collect()
    }

    /// Where else a route is declared, and what this table must agree with.
    const ADD_A_ROUTE: &str = "a route is declared in shared/platform/src/routes.rs (ROUTES) and again, the same, \
        as an HttpApi event of its function in infra/template.yaml, in [workspace.metadata.lambda.watch.router] \
        of Cargo.toml, and as a path with its operationId in schemas/openapi.json";

    #[test]
    fn the_route_table_is_what_the_template_the_local_router_and_the_openapi_document_declare() {
        // The OpenAPI document: method, path, operationId.
        let doc: Value = serde_json::from_str(include_str!("../../../schemas/openapi.json")).unwrap();
        let documented: Declared = doc["paths"]
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(path, item)| {
                item.as_object().unwrap().iter().map(move |(method, op)| {
                    (method.to_uppercase(), path.clone(), op["operationId"].as_str().unwrap_or_default().to_owned())
                })
            })
            .collect();
        assert_eq!(ours(false), documented, "{ADD_A_ROUTE}");

        // The local router: method, path, function.
        let manifest = include_str!("../../../Cargo.toml");
        let router = manifest.split("[workspace.metadata.lambda.watch.router]").nth(1).unwrap();
        let mut served = Declared::new();
        for line in router.lines().filter(|l| l.starts_with('"')) {
            let path = line.split('"').nth(1).unwrap();
            for entry in line.split("method = \"").skip(1) {
                let method = entry.split('"').next().unwrap();
                let function = entry.split("function = \"").nth(1).unwrap().split('"').next().unwrap();
                served.insert((method.to_owned(), path.to_owned(), function.to_owned()));
            }
        }
        assert_eq!(ours(true), served, "{ADD_A_ROUTE}");

        // The SAM template: each function's HttpApi events, under its binary's name.
        let template = include_str!("../../../infra/template.yaml");
        let mut deployed = Declared::new();
        // One resource per block: a line `  Name:` at two spaces starts the next.
        let mut blocks: Vec<String> = Vec::new();
        for line in template.lines() {
            let resource = line.starts_with("  ") && !line.starts_with("   ") && line.trim_end().ends_with(':');
            match blocks.last_mut() {
                Some(block) if !resource => block.push_str(&format!("{line}\n")),
                _ => blocks.push(format!("{line}\n")),
            }
        }
        for block in blocks.iter().filter(|b| b.contains("Type: AWS::Serverless::Function")) {
            let Some(binary) = block.split("Binary: ").nth(1).map(|b| b.split([' ', '}']).next().unwrap()) else {
                continue;
            };
            for event in block.split("Method: ").skip(1) {
                let method = event.split([',', '\n']).next().unwrap().trim();
                let path = event.split("Path: ").nth(1).unwrap().trim_start_matches('"');
                let path = path.split(['"', ' ', '\n']).next().unwrap();
                deployed.insert((method.to_owned(), path.to_owned(), binary.to_owned()));
            }
        }
        assert_eq!(ours(true), deployed, "{ADD_A_ROUTE}");
    }

    #[test]
    fn a_path_finds_its_route_and_parameters_else_404_or_405_with_allow() {
        let (route, params) = find(&Method::GET, "/v1/meters/1EMH0012345678/readings").unwrap();
        assert_eq!(route.operation, Operation::GetMeterReadings);
        assert_eq!(params.get("meterNumber", |s| Ok::<_, ()>(s.to_owned())).unwrap(), "1EMH0012345678");
        assert_eq!(params.get("meterNumber", |_| Err::<(), _>(())).unwrap_err().status, StatusCode::NOT_FOUND);
        assert_eq!(find(&Method::POST, "/v1/sessions").unwrap().0.operation, Operation::Login);
        assert_eq!(find(&Method::DELETE, "/v1/sessions/current").unwrap().0.operation, Operation::Logout);
        for unknown in ["/v1/meters//readings", "/v1/meters/1/readings/2", "/v2/me", "/v1", ""] {
            assert_eq!(find(&Method::GET, unknown).unwrap_err().code, "NOT_FOUND", "{unknown}");
        }
        let refused = find(&Method::PUT, "/v1/me").unwrap_err();
        assert_eq!((refused.status, refused.allow.as_deref()), (StatusCode::METHOD_NOT_ALLOWED, Some("DELETE, GET")));
        let response = refused.to_response("r-1");
        assert_eq!(response.headers()["allow"], "DELETE, GET");
        assert_eq!(response.headers()["content-type"], "application/problem+json");
        // Every template's own example path finds that route.
        for r in ROUTES {
            let path = r.path.replace('{', "X").replace('}', "");
            let method = Method::from_bytes(r.method.as_bytes()).unwrap();
            assert_eq!(find(&method, &path).unwrap().0, r, "{path}");
        }
    }
}
