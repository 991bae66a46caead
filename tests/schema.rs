//! The committed `schema.graphql` is exactly what the code serves, and every type, field,
//! argument and enum value in it carries a description a dashboard author can act on.

mod common;

use async_graphql::parser::types::{TypeKind, TypeSystemDefinition};

#[test]
fn the_committed_schema_is_the_served_schema() {
    let output = std::process::Command::new(common::BINARY)
        .arg("schema")
        .output()
        .expect("run schema");
    let served = String::from_utf8(output.stdout).expect("utf-8");
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql"))
        .expect("schema.graphql");
    assert!(
        served == committed,
        "schema.graphql is stale: run `cargo run -- schema > schema.graphql`"
    );
}

#[test]
fn every_type_field_argument_and_value_is_described() {
    let sdl = inventory_service::graphql::sdl();
    // The schema itself is described too; async-graphql's parser predates descriptions on
    // `schema`, so the types are checked without it.
    let described = format!(
        "\"\"\"\n{}\n\"\"\"\nschema {{",
        inventory_service::graphql::SCHEMA_DESCRIPTION
    );
    assert!(sdl.contains(&described), "the schema has no description");
    let sdl = sdl.replace(&described, "schema {");
    let document = async_graphql::parser::parse_schema(&sdl).expect("valid SDL");
    let mut missing = Vec::new();
    for definition in &document.definitions {
        let TypeSystemDefinition::Type(ty) = definition else {
            continue;
        };
        let ty = &ty.node;
        let name = ty.name.node.as_str();
        if ty.description.is_none() {
            missing.push(name.to_owned());
        }
        match &ty.kind {
            TypeKind::Object(object) => {
                for field in &object.fields {
                    let field = &field.node;
                    if field.description.is_none() {
                        missing.push(format!("{name}.{}", field.name.node));
                    }
                    for argument in &field.arguments {
                        if argument.node.description.is_none() {
                            missing.push(format!(
                                "{name}.{}({})",
                                field.name.node, argument.node.name.node
                            ));
                        }
                    }
                }
            }
            TypeKind::InputObject(input) => {
                for field in &input.fields {
                    if field.node.description.is_none() {
                        missing.push(format!("{name}.{}", field.node.name.node));
                    }
                }
            }
            TypeKind::Enum(values) => {
                for value in &values.values {
                    if value.node.description.is_none() {
                        missing.push(format!("{name}.{}", value.node.value.node));
                    }
                }
            }
            _ => {}
        }
    }
    assert!(missing.is_empty(), "undescribed: {missing:#?}");
}
